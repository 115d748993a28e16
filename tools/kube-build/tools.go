//go:build tools

// Package kubebuild pins the Kubernetes control plane that scripts/kube.sh
// builds: kube-apiserver, kube-controller-manager and kubectl from
// k8s.io/kubernetes, and etcd (./etcd) from the same module graph.
package kubebuild

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
