// Command hostpath-provisioner provisions PersistentVolumes for the local node of
// scripts/node.sh the way minikube's storage-provisioner does: a claim of the
// StorageClass whose provisioner is k8s.io/minikube-hostpath gets a directory on
// the node's disk (mode 0777, so a pod of any uid can write it, as on minikube),
// and a released volume with the Delete policy loses its directory.
//
// It polls (every second) instead of watching: one node, a handful of claims.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

const (
	provisioner = "k8s.io/minikube-hostpath"
	// The PV controller sets this on a claim whose class names an external provisioner.
	claimProvisionerKey = "volume.kubernetes.io/storage-provisioner"
	dynamicallyCreated  = "pv.kubernetes.io/provisioned-by"
)

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the API server")
	root := flag.String("root", "", "directory that holds the volumes")
	flag.Parse()
	if *kubeconfig == "" || *root == "" {
		log.Fatal("usage: hostpath-provisioner --kubeconfig FILE --root DIR")
	}
	config, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		log.Fatalf("reading %s: %v", *kubeconfig, err)
	}
	client := kubernetes.NewForConfigOrDie(config)
	log.Printf("provisioning %s volumes under %s", provisioner, *root)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := reconcile(ctx, client, *root); err != nil {
			log.Printf("reconcile: %v", err)
		}
		cancel()
		time.Sleep(time.Second)
	}
}

func reconcile(ctx context.Context, client kubernetes.Interface, root string) error {
	classes, err := client.StorageV1().StorageClasses().List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	ours := map[string]storagev1.StorageClass{}
	for _, class := range classes.Items {
		if class.Provisioner == provisioner {
			ours[class.Name] = class
		}
	}
	claims, err := client.CoreV1().PersistentVolumeClaims("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for _, claim := range claims.Items {
		if claim.Spec.VolumeName != "" || claim.Annotations[claimProvisionerKey] != provisioner {
			continue
		}
		if claim.Spec.StorageClassName == nil {
			continue
		}
		class, found := ours[*claim.Spec.StorageClassName]
		if !found {
			continue
		}
		if err := provision(ctx, client, root, &claim, &class); err != nil {
			log.Printf("provisioning %s/%s: %v", claim.Namespace, claim.Name, err)
		}
	}
	volumes, err := client.CoreV1().PersistentVolumes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for _, volume := range volumes.Items {
		if volume.Annotations[dynamicallyCreated] != provisioner || volume.Status.Phase != corev1.VolumeReleased ||
			volume.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete {
			continue
		}
		if err := os.RemoveAll(volume.Spec.HostPath.Path); err != nil {
			log.Printf("removing %s: %v", volume.Spec.HostPath.Path, err)
			continue
		}
		err := client.CoreV1().PersistentVolumes().Delete(ctx, volume.Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			log.Printf("deleting %s: %v", volume.Name, err)
			continue
		}
		log.Printf("deleted %s", volume.Name)
	}
	return nil
}

func provision(ctx context.Context, client kubernetes.Interface, root string, claim *corev1.PersistentVolumeClaim, class *storagev1.StorageClass) error {
	name := "pvc-" + string(claim.UID)
	dir := filepath.Join(root, claim.Namespace+"-"+claim.Name+"-"+name)
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return err
	}
	// MkdirAll's mode passes through the umask.
	if err := os.Chmod(dir, 0o777); err != nil {
		return err
	}
	policy := corev1.PersistentVolumeReclaimDelete
	if class.ReclaimPolicy != nil {
		policy = *class.ReclaimPolicy
	}
	hostPathType := corev1.HostPathDirectory
	volume := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Annotations: map[string]string{dynamicallyCreated: provisioner},
		},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: claim.Spec.Resources.Requests[corev1.ResourceStorage]},
			AccessModes:                   claim.Spec.AccessModes,
			PersistentVolumeReclaimPolicy: policy,
			StorageClassName:              class.Name,
			ClaimRef: &corev1.ObjectReference{
				Kind: "PersistentVolumeClaim", Namespace: claim.Namespace, Name: claim.Name,
				UID: claim.UID, APIVersion: "v1", ResourceVersion: claim.ResourceVersion,
			},
			PersistentVolumeSource: corev1.PersistentVolumeSource{
				HostPath: &corev1.HostPathVolumeSource{Path: dir, Type: &hostPathType},
			},
		},
	}
	_, err := client.CoreV1().PersistentVolumes().Create(ctx, volume, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("creating %s: %w", name, err)
	}
	log.Printf("provisioned %s for %s/%s at %s", name, claim.Namespace, claim.Name, dir)
	return nil
}
