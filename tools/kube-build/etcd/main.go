// Command etcd is etcd's server, built from the go.etcd.io/etcd/server/v3
// release that k8s.io/kubernetes requires, for the local control plane.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
