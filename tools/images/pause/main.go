// Command pause is the sandbox ("pause") container of the local node's pods: it
// holds the pod's namespaces and does nothing until it is told to stop, like
// Kubernetes' own pause (a C program) does.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	// Orphaned processes of the pod are reparented to PID 1 (this program) when
	// the pod shares its PID namespace; ignoring SIGCHLD lets the kernel reap them.
	signal.Ignore(syscall.SIGCHLD)
	<-stop
}
