//go:build tools

// Package kubebuild pins the Kubernetes binaries that scripts/kube.sh builds: the
// control plane (kube-apiserver, kube-controller-manager, kubectl) and the node
// of scripts/node.sh (kubelet, kube-proxy, kube-scheduler) from k8s.io/kubernetes,
// with etcd (./etcd) and the hostpath provisioner (./hostpath-provisioner) from
// the same module graph.
package kubebuild

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
