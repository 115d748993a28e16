// Command k8s-validate checks rendered Kubernetes manifests offline for what a
// Kubernetes API server does not check. What the server proves is proven on a
// real one by scripts/check-chart-cluster.sh (validation and defaulting of
// every kind, CRD schemas, names and labels, the restricted Pod Security
// Standard by admission, RBAC) and is not repeated here.
//
// Every document of a built-in, Gateway API or Prometheus Operator kind is
// decoded strictly into its Go type (the base of the checks below; a typo
// fails here, before a cluster is involved). Kinds that only a CRD describes
// (traefik.io, keda.sh) are left to the server. On the typed objects it checks:
//   - platform policy: read-only root filesystem, requests and memory limits on
//     every container, no service-account token, probes on long-running pods,
//     pinned image tags (the server accepts all of these);
//   - references resolve inside the render: Service/PDB/NetworkPolicy/HPA
//     selectors and targets, Ingress and HTTPRoute backends, ConfigMaps,
//     Secrets and ServiceAccounts used by pods (the server stores dangling
//     references without complaint);
//   - no object twice in one render;
//   - optionally, the sum of CPU/memory requests fits a budget.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"
)

type options struct {
	dumpConfigMaps  string
	maxCPU          string
	maxMemory       string
	externalSecrets map[string]bool
	quiet           bool
}

// object is one decoded document with where it came from.
type object struct {
	source string
	gvk    schema.GroupVersionKind
	meta   metav1.ObjectMeta
	value  runtime.Object
}

func (o object) id() string {
	return fmt.Sprintf("%s %s/%s", o.source, o.gvk.Kind, o.meta.Name)
}

// workload is a pod template found in a Deployment, StatefulSet, Job or Pod.
type workload struct {
	obj      object
	meta     metav1.ObjectMeta
	spec     *corev1.PodSpec
	replicas int64
	longRun  bool
}

type report struct{ errs []string }

func (r *report) add(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func main() {
	var opts options
	var external string
	flag.StringVar(&opts.maxCPU, "max-cpu", "", "fail when the summed CPU requests exceed this quantity (e.g. 2)")
	flag.StringVar(&opts.maxMemory, "max-memory", "", "fail when the summed memory requests exceed this quantity (e.g. 4Gi)")
	flag.StringVar(&external, "external-secrets", "", "comma-separated Secret names that exist outside the render")
	flag.BoolVar(&opts.quiet, "quiet", false, "print only errors and the summary line")
	flag.StringVar(&opts.dumpConfigMaps, "dump-configmaps", "", "write every ConfigMap key to DIR/<configmap>/<key> (to check embedded configuration files)")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: k8s-validate [flags] FILE... (use - for stdin)\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	opts.externalSecrets = map[string]bool{}
	for _, s := range strings.Split(external, ",") {
		if s = strings.TrimSpace(s); s != "" {
			opts.externalSecrets[s] = true
		}
	}
	if err := run(flag.Args(), opts); err != nil {
		fmt.Fprintln(os.Stderr, "k8s-validate:", err)
		os.Exit(1)
	}
}

func run(files []string, opts options) error {
	scheme, err := newScheme()
	if err != nil {
		return err
	}
	rep := &report{}
	var objs []object
	for _, f := range files {
		objs = append(objs, decodeFile(scheme, f, rep)...)
	}
	workloads := collectWorkloads(objs)
	applyAutoscalerMinimum(objs, workloads)
	checkDuplicates(objs, rep)
	checkPlatformPolicy(objs, workloads, rep)
	checkReferences(objs, workloads, opts, rep)
	if err := checkBudget(workloads, opts, rep); err != nil {
		return err
	}
	if !opts.quiet {
		printKinds(objs)
	}
	if opts.dumpConfigMaps != "" {
		if err := dumpConfigMaps(objs, opts.dumpConfigMaps); err != nil {
			return err
		}
	}
	if len(rep.errs) > 0 {
		for _, e := range rep.errs {
			fmt.Fprintln(os.Stderr, "ERROR:", e)
		}
		return fmt.Errorf("%d problem(s) in %d object(s)", len(rep.errs), len(objs))
	}
	fmt.Printf("k8s-validate: %d objects valid (%d pod templates meet the platform policy)\n",
		len(objs), len(workloads))
	return nil
}

func newScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	adders := []func(*runtime.Scheme) error{
		corev1.AddToScheme, appsv1.AddToScheme, batchv1.AddToScheme,
		autoscalingv2.AddToScheme, policyv1.AddToScheme, networkingv1.AddToScheme,
		rbacv1.AddToScheme, gatewayv1.Install, monitoringv1.AddToScheme,
	}
	for _, add := range adders {
		if err := add(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func decodeFile(scheme *runtime.Scheme, path string, rep *report) []object {
	var in io.Reader
	if path == "-" {
		in = os.Stdin
	} else {
		f, err := os.Open(path)
		if err != nil {
			rep.add("%v", err)
			return nil
		}
		defer f.Close()
		in = f
	}
	reader := utilyaml.NewYAMLReader(bufio.NewReader(in))
	var out []object
	for i := 1; ; i++ {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			rep.add("%s: document %d: %v", path, i, err)
			return out
		}
		if o, ok := decodeDoc(scheme, fmt.Sprintf("%s#%d", path, i), doc, rep); ok {
			out = append(out, o)
		}
	}
}

func decodeDoc(scheme *runtime.Scheme, source string, doc []byte, rep *report) (object, bool) {
	if len(bytes.TrimSpace(stripComments(doc))) == 0 {
		return object{}, false
	}
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		rep.add("%s: not a YAML object: %v", source, err)
		return object{}, false
	}
	gv, err := schema.ParseGroupVersion(tm.APIVersion)
	if err != nil || tm.Kind == "" {
		rep.add("%s: missing or invalid apiVersion/kind (%q, %q)", source, tm.APIVersion, tm.Kind)
		return object{}, false
	}
	gvk := gv.WithKind(tm.Kind)
	if serverValidatedGroups[gvk.Group] {
		var named metav1.PartialObjectMetadata
		if err := yaml.Unmarshal(doc, &named); err != nil {
			rep.add("%s: %v", source, err)
			return object{}, false
		}
		return object{source: source, gvk: gvk, meta: named.ObjectMeta}, true
	}
	obj, err := scheme.New(gvk)
	if err != nil {
		rep.add("%s: unknown apiVersion/kind %s (not a type this validator knows)", source, gvk)
		return object{}, false
	}
	if tmpl := helmSource(doc); tmpl != "" {
		source += " (" + tmpl + ")"
	}
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		var named metav1.PartialObjectMetadata
		_ = yaml.Unmarshal(doc, &named)
		rep.add("%s %s/%s: %v", source, gvk.Kind, named.Name, err)
		return object{}, false
	}
	accessor, ok := obj.(metav1.Object)
	if !ok {
		rep.add("%s: %s has no metadata", source, gvk)
		return object{}, false
	}
	meta := metav1.ObjectMeta{
		Name: accessor.GetName(), Namespace: accessor.GetNamespace(),
		Labels: accessor.GetLabels(), Annotations: accessor.GetAnnotations(),
	}
	return object{source: source, gvk: gvk, meta: meta, value: obj}, true
}

// helmSource returns the template a `helm template` document came from.
func helmSource(doc []byte) string {
	for _, line := range strings.Split(string(doc), "\n") {
		if rest, ok := strings.CutPrefix(line, "# Source: "); ok {
			return strings.TrimSpace(rest)
		}
	}
	return ""
}

func stripComments(doc []byte) []byte {
	var out bytes.Buffer
	for _, line := range strings.Split(string(doc), "\n") {
		if t := strings.TrimSpace(line); t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		out.WriteString(line + "\n")
	}
	return out.Bytes()
}

func collectWorkloads(objs []object) []workload {
	var out []workload
	for _, o := range objs {
		switch v := o.value.(type) {
		case *appsv1.Deployment:
			out = append(out, workload{o, v.Spec.Template.ObjectMeta, &v.Spec.Template.Spec, replicas(v.Spec.Replicas), true})
		case *appsv1.StatefulSet:
			out = append(out, workload{o, v.Spec.Template.ObjectMeta, &v.Spec.Template.Spec, replicas(v.Spec.Replicas), true})
		case *batchv1.Job:
			out = append(out, workload{o, v.Spec.Template.ObjectMeta, &v.Spec.Template.Spec, 1, false})
		case *corev1.Pod:
			out = append(out, workload{o, v.ObjectMeta, &v.Spec, 1, false})
		}
	}
	return out
}

// applyAutoscalerMinimum counts an autoscaled workload at no fewer replicas
// than its HorizontalPodAutoscaler's minimum.
func applyAutoscalerMinimum(objs []object, ws []workload) {
	for _, o := range objs {
		hpa, ok := o.value.(*autoscalingv2.HorizontalPodAutoscaler)
		if !ok {
			continue
		}
		min := int64(1)
		if hpa.Spec.MinReplicas != nil {
			min = int64(*hpa.Spec.MinReplicas)
		}
		for i := range ws {
			if ws[i].obj.gvk.Kind == hpa.Spec.ScaleTargetRef.Kind && ws[i].obj.meta.Name == hpa.Spec.ScaleTargetRef.Name && ws[i].replicas < min {
				ws[i].replicas = min
			}
		}
	}
}

func replicas(r *int32) int64 {
	if r == nil {
		return 1
	}
	return int64(*r)
}

// serverValidatedGroups are API groups of kinds that only a CRD describes: the
// API server validates them against the CRDs' published schemas
// (scripts/check-chart-cluster.sh installs the official ones).
var serverValidatedGroups = map[string]bool{"traefik.io": true, "keda.sh": true}

func checkDuplicates(objs []object, rep *report) {
	seen := map[string]string{}
	for _, o := range objs {
		key := o.gvk.GroupKind().String() + "/" + o.meta.Namespace + "/" + o.meta.Name
		if prev, dup := seen[key]; dup {
			rep.add("%s: duplicate of %s", o.id(), prev)
		}
		seen[key] = o.source
	}
}

func checkPlatformPolicy(objs []object, ws []workload, rep *report) {
	tokenless := map[string]bool{}
	for _, o := range objs {
		if sa, ok := o.value.(*corev1.ServiceAccount); ok && sa.AutomountServiceAccountToken != nil && !*sa.AutomountServiceAccountToken {
			tokenless[sa.Name] = true
		}
	}
	for _, w := range ws {
		id := w.obj.id()
		if a := w.spec.AutomountServiceAccountToken; (a == nil || *a) && !tokenless[w.spec.ServiceAccountName] {
			rep.add("%s: the service-account token is mounted (set automountServiceAccountToken: false)", id)
		}
		for _, c := range allContainers(w.spec) {
			checkContainer(id, c, w.longRun, rep)
		}
	}
}

func allContainers(spec *corev1.PodSpec) []corev1.Container {
	return append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...)
}

func checkContainer(id string, c corev1.Container, longRun bool, rep *report) {
	where := fmt.Sprintf("%s container %q", id, c.Name)
	if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		rep.add("%s: readOnlyRootFilesystem must be true", where)
	}
	if _, ok := c.Resources.Requests[corev1.ResourceCPU]; !ok {
		rep.add("%s: no CPU request", where)
	}
	if _, ok := c.Resources.Requests[corev1.ResourceMemory]; !ok {
		rep.add("%s: no memory request", where)
	}
	if _, ok := c.Resources.Limits[corev1.ResourceMemory]; !ok {
		rep.add("%s: no memory limit", where)
	}
	if err := checkImage(c.Image); err != nil {
		rep.add("%s: %v", where, err)
	}
	if longRun && (c.ReadinessProbe == nil || c.LivenessProbe == nil) {
		rep.add("%s: long-running container without readiness and liveness probes", where)
	}
}

func checkImage(image string) error {
	if image == "" {
		return errors.New("no image")
	}
	if strings.Contains(image, "@sha256:") {
		return nil
	}
	name := image[strings.LastIndex(image, "/")+1:]
	i := strings.LastIndex(name, ":")
	if i < 0 || name[i+1:] == "" {
		return fmt.Errorf("image %q has no tag", image)
	}
	if name[i+1:] == "latest" {
		return fmt.Errorf("image %q uses the floating tag latest", image)
	}
	return nil
}

// index holds what references can point at.
type index struct {
	kinds map[string]map[string]bool // kind -> names
	ws    []workload
}

func newIndex(objs []object, ws []workload) index {
	idx := index{kinds: map[string]map[string]bool{}, ws: ws}
	for _, o := range objs {
		if idx.kinds[o.gvk.Kind] == nil {
			idx.kinds[o.gvk.Kind] = map[string]bool{}
		}
		idx.kinds[o.gvk.Kind][o.meta.Name] = true
	}
	return idx
}

func (idx index) has(kind, name string) bool { return idx.kinds[kind][name] }

// selected returns the pod templates a selector matches; only long-running
// ones unless anyPod is set (NetworkPolicies also cover Jobs and Pods).
func (idx index) selected(sel labels.Selector, anyPod bool) []workload {
	var out []workload
	for _, w := range idx.ws {
		if (w.longRun || anyPod) && sel.Matches(labels.Set(w.meta.Labels)) {
			out = append(out, w)
		}
	}
	return out
}

func checkReferences(objs []object, ws []workload, opts options, rep *report) {
	idx := newIndex(objs, ws)
	services := map[string]*corev1.Service{}
	for _, o := range objs {
		if s, ok := o.value.(*corev1.Service); ok {
			services[s.Name] = s
		}
	}
	for _, o := range objs {
		switch v := o.value.(type) {
		case *appsv1.Deployment:
			checkOwnSelector(o, v.Spec.Selector, v.Spec.Template.Labels, rep)
		case *appsv1.StatefulSet:
			checkOwnSelector(o, v.Spec.Selector, v.Spec.Template.Labels, rep)
			if v.Spec.ServiceName != "" && services[v.Spec.ServiceName] == nil {
				rep.add("%s: serviceName %q is not in the render", o.id(), v.Spec.ServiceName)
			}
		case *corev1.Service:
			checkService(o, v, idx, rep)
		case *policyv1.PodDisruptionBudget:
			checkSelects(o, v.Spec.Selector, idx, false, rep)
		case *networkingv1.NetworkPolicy:
			checkSelects(o, &v.Spec.PodSelector, idx, true, rep)
		case *autoscalingv2.HorizontalPodAutoscaler:
			if !idx.has(v.Spec.ScaleTargetRef.Kind, v.Spec.ScaleTargetRef.Name) {
				rep.add("%s: scale target %s/%s is not in the render", o.id(), v.Spec.ScaleTargetRef.Kind, v.Spec.ScaleTargetRef.Name)
			}
		case *networkingv1.Ingress:
			checkIngress(o, v, services, rep)
		case *gatewayv1.HTTPRoute:
			checkHTTPRoute(o, v, services, rep)
		case *monitoringv1.ServiceMonitor:
			checkServiceMonitor(o, v, services, rep)
		}
	}
	for _, w := range ws {
		checkPodRefs(w, idx, opts, rep)
	}
}

func checkOwnSelector(o object, sel *metav1.LabelSelector, tmpl map[string]string, rep *report) {
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil || s.Empty() {
		rep.add("%s: invalid or empty selector", o.id())
		return
	}
	if !s.Matches(labels.Set(tmpl)) {
		rep.add("%s: selector does not match the pod template labels", o.id())
	}
}

func checkSelects(o object, sel *metav1.LabelSelector, idx index, anyPod bool, rep *report) {
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		rep.add("%s: invalid selector: %v", o.id(), err)
		return
	}
	if len(idx.selected(s, anyPod)) == 0 {
		rep.add("%s: selector matches no workload in the render", o.id())
	}
}

func checkService(o object, svc *corev1.Service, idx index, rep *report) {
	if svc.Spec.Type == corev1.ServiceTypeExternalName {
		return
	}
	if len(svc.Spec.Selector) == 0 {
		rep.add("%s: no selector", o.id())
		return
	}
	matched := idx.selected(labels.SelectorFromSet(svc.Spec.Selector), false)
	if len(matched) == 0 {
		rep.add("%s: selector %v matches no workload in the render", o.id(), svc.Spec.Selector)
		return
	}
	for _, p := range svc.Spec.Ports {
		if p.TargetPort.StrVal == "" {
			continue
		}
		for _, w := range matched {
			if !hasNamedPort(w.spec, p.TargetPort.StrVal) {
				rep.add("%s: targetPort %q is not a container port of %s", o.id(), p.TargetPort.StrVal, w.obj.id())
			}
		}
	}
}

func hasNamedPort(spec *corev1.PodSpec, name string) bool {
	for _, c := range spec.Containers {
		for _, p := range c.Ports {
			if p.Name == name {
				return true
			}
		}
	}
	return false
}

func servicePortOK(svc *corev1.Service, name string, number int32) bool {
	for _, p := range svc.Spec.Ports {
		if (name != "" && p.Name == name) || (number != 0 && p.Port == number) {
			return true
		}
	}
	return false
}

func checkIngress(o object, ing *networkingv1.Ingress, services map[string]*corev1.Service, rep *report) {
	for _, rule := range ing.Spec.Rules {
		if rule.HTTP == nil {
			continue
		}
		for _, p := range rule.HTTP.Paths {
			b := p.Backend.Service
			if b == nil {
				rep.add("%s: path %s has no service backend", o.id(), p.Path)
				continue
			}
			svc := services[b.Name]
			if svc == nil {
				rep.add("%s: backend service %q is not in the render", o.id(), b.Name)
			} else if !servicePortOK(svc, b.Port.Name, b.Port.Number) {
				rep.add("%s: backend %s has no port %s/%d", o.id(), b.Name, b.Port.Name, b.Port.Number)
			}
		}
	}
}

func checkHTTPRoute(o object, r *gatewayv1.HTTPRoute, services map[string]*corev1.Service, rep *report) {
	if len(r.Spec.ParentRefs) == 0 {
		rep.add("%s: no parentRefs", o.id())
	}
	for _, rule := range r.Spec.Rules {
		for _, b := range rule.BackendRefs {
			if b.Kind != nil && *b.Kind != "Service" {
				continue
			}
			svc := services[string(b.Name)]
			if svc == nil {
				rep.add("%s: backend service %q is not in the render", o.id(), b.Name)
			} else if b.Port == nil || !servicePortOK(svc, "", *b.Port) {
				rep.add("%s: backend %s needs a port the Service exposes", o.id(), b.Name)
			}
		}
	}
}

func checkServiceMonitor(o object, sm *monitoringv1.ServiceMonitor, services map[string]*corev1.Service, rep *report) {
	sel, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
	if err != nil {
		rep.add("%s: invalid selector: %v", o.id(), err)
		return
	}
	matched := false
	for _, svc := range services {
		if !sel.Matches(labels.Set(svc.Labels)) {
			continue
		}
		matched = true
		for _, ep := range sm.Spec.Endpoints {
			if ep.Port != "" && !servicePortOK(svc, ep.Port, 0) {
				rep.add("%s: Service %s has no port named %q", o.id(), svc.Name, ep.Port)
			}
		}
	}
	if matched {
		return
	}
	rep.add("%s: selector matches no Service in the render", o.id())
}

func checkPodRefs(w workload, idx index, opts options, rep *report) {
	id := w.obj.id()
	if sa := w.spec.ServiceAccountName; sa != "" && sa != "default" && !idx.has("ServiceAccount", sa) {
		rep.add("%s: serviceAccountName %q is not in the render", id, sa)
	}
	need := func(kind, name string, optional *bool) {
		if optional != nil && *optional {
			return
		}
		if idx.has(kind, name) || (kind == "Secret" && opts.externalSecrets[name]) {
			return
		}
		rep.add("%s: %s %q is not in the render (pass -external-secrets for Secrets created outside)", id, kind, name)
	}
	for _, v := range w.spec.Volumes {
		if v.ConfigMap != nil {
			need("ConfigMap", v.ConfigMap.Name, v.ConfigMap.Optional)
		}
		if v.Secret != nil {
			need("Secret", v.Secret.SecretName, v.Secret.Optional)
		}
	}
	for _, c := range allContainers(w.spec) {
		for _, e := range c.EnvFrom {
			if e.ConfigMapRef != nil {
				need("ConfigMap", e.ConfigMapRef.Name, e.ConfigMapRef.Optional)
			}
			if e.SecretRef != nil {
				need("Secret", e.SecretRef.Name, e.SecretRef.Optional)
			}
		}
		for _, e := range c.Env {
			if e.ValueFrom == nil {
				continue
			}
			if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
				need("ConfigMap", r.Name, r.Optional)
			}
			if r := e.ValueFrom.SecretKeyRef; r != nil {
				need("Secret", r.Name, r.Optional)
			}
		}
	}
}

// podRequests is what the scheduler reserves for one pod: the larger of the
// biggest init container and the sum of the regular containers.
func podRequests(spec *corev1.PodSpec, name corev1.ResourceName) resource.Quantity {
	var sum resource.Quantity
	for _, c := range spec.Containers {
		if q, ok := c.Resources.Requests[name]; ok {
			sum.Add(q)
		}
	}
	for _, c := range spec.InitContainers {
		if q, ok := c.Resources.Requests[name]; ok && q.Cmp(sum) > 0 {
			sum = q.DeepCopy()
		}
	}
	return sum
}

func checkBudget(ws []workload, opts options, rep *report) error {
	if opts.maxCPU == "" && opts.maxMemory == "" {
		return nil
	}
	var cpu, mem resource.Quantity
	for _, w := range ws {
		c, m := podRequests(w.spec, corev1.ResourceCPU), podRequests(w.spec, corev1.ResourceMemory)
		for i := int64(0); i < w.replicas; i++ {
			cpu.Add(c)
			mem.Add(m)
		}
	}
	fmt.Printf("k8s-validate: requests of all pods (replicas and one-shot jobs counted): cpu=%s memory=%dMi\n",
		cpu.String(), mem.Value()/(1<<20))
	for _, b := range []struct {
		limit string
		have  resource.Quantity
		what  string
	}{{opts.maxCPU, cpu, "CPU"}, {opts.maxMemory, mem, "memory"}} {
		if b.limit == "" {
			continue
		}
		max, err := resource.ParseQuantity(b.limit)
		if err != nil {
			return fmt.Errorf("budget %q: %w", b.limit, err)
		}
		if b.have.Cmp(max) > 0 {
			rep.add("summed %s requests %s exceed the budget %s", b.what, b.have.String(), max.String())
		}
	}
	return nil
}

func dumpConfigMaps(objs []object, dir string) error {
	for _, o := range objs {
		cm, ok := o.value.(*corev1.ConfigMap)
		if !ok {
			continue
		}
		sub := filepath.Join(dir, cm.Name)
		if err := os.MkdirAll(sub, 0o755); err != nil {
			return err
		}
		for key, value := range cm.Data {
			if err := os.WriteFile(filepath.Join(sub, filepath.Base(key)), []byte(value), 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

func printKinds(objs []object) {
	count := map[string]int{}
	for _, o := range objs {
		count[o.gvk.GroupVersion().String()+" "+o.gvk.Kind]++
	}
	keys := make([]string, 0, len(count))
	for k := range count {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Printf("  %3d x %s\n", count[k], k)
	}
}
