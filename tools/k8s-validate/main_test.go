package main

import (
	"strings"
	"testing"
)

const validDeployment = `
apiVersion: v1
kind: ServiceAccount
metadata: {name: app}
automountServiceAccountToken: false
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: app}
spec:
  selector: {matchLabels: {app: app}}
  template:
    metadata: {labels: {app: app}}
    spec:
      serviceAccountName: app
      securityContext:
        runAsNonRoot: true
        runAsUser: 10001
        seccompProfile: {type: RuntimeDefault}
      containers:
        - name: app
          image: example/app:1.0.0
          ports: [{name: http, containerPort: 8000}]
          readinessProbe: {httpGet: {path: /ready, port: http}}
          livenessProbe: {httpGet: {path: /live, port: http}}
          resources:
            requests: {cpu: 100m, memory: 64Mi}
            limits: {memory: 128Mi}
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities: {drop: [ALL]}
`

func validate(t *testing.T, docs string, opts options) []string {
	t.Helper()
	scheme, err := newScheme()
	if err != nil {
		t.Fatal(err)
	}
	rep := &report{}
	var objs []object
	for i, doc := range strings.Split(docs, "\n---\n") {
		if o, ok := decodeDoc(scheme, "doc", []byte(doc), rep); ok {
			objs = append(objs, o)
		} else if len(rep.errs) == 0 {
			t.Fatalf("document %d was skipped", i)
		}
	}
	ws := collectWorkloads(objs)
	checkDuplicates(objs, rep)
	checkPlatformPolicy(objs, ws, rep)
	checkReferences(objs, ws, opts, rep)
	if err := checkBudget(ws, opts, rep); err != nil {
		t.Fatal(err)
	}
	return rep.errs
}

func expectError(t *testing.T, errs []string, want string) {
	t.Helper()
	for _, e := range errs {
		if strings.Contains(e, want) {
			return
		}
	}
	t.Fatalf("expected an error containing %q, got %q", want, errs)
}

func TestValidDeploymentPasses(t *testing.T) {
	if errs := validate(t, validDeployment, options{}); len(errs) > 0 {
		t.Fatalf("unexpected errors: %q", errs)
	}
}

func TestMisspelledFieldFails(t *testing.T) {
	doc := strings.Replace(validDeployment, "readinessProbe:", "readinesProbe:", 1)
	expectError(t, validate(t, doc, options{}), `unknown field "readinesProbe"`)
}

func TestUnknownKindFails(t *testing.T) {
	doc := strings.Replace(validDeployment, "kind: Deployment", "kind: Deploymnt", 1)
	expectError(t, validate(t, doc, options{}), "unknown apiVersion/kind")
}

func TestWritableRootFilesystemFails(t *testing.T) {
	doc := strings.Replace(validDeployment, "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false", 1)
	expectError(t, validate(t, doc, options{}), "readOnlyRootFilesystem")
}

func TestLatestTagFails(t *testing.T) {
	doc := strings.Replace(validDeployment, "example/app:1.0.0", "example/app:latest", 1)
	expectError(t, validate(t, doc, options{}), "latest")
}

func TestServiceSelectorMustMatch(t *testing.T) {
	doc := validDeployment + `---
apiVersion: v1
kind: Service
metadata: {name: app}
spec:
  selector: {app: other}
  ports: [{port: 80, targetPort: http}]
`
	expectError(t, validate(t, doc, options{}), "matches no workload")
}

func TestBudget(t *testing.T) {
	expectError(t, validate(t, validDeployment, options{maxCPU: "50m"}), "exceed the budget")
	if errs := validate(t, validDeployment, options{maxCPU: "2", maxMemory: "4Gi"}); len(errs) > 0 {
		t.Fatalf("unexpected errors: %q", errs)
	}
}

func TestCRDKindsAreLeftToTheServer(t *testing.T) {
	doc := `
apiVersion: traefik.io/v1alpha1
kind: Middleware
metadata: {name: strip}
spec:
  stripPrefix:
    prefixes: [/api]
`
	if errs := validate(t, doc, options{}); len(errs) > 0 {
		t.Fatalf("unexpected errors: %q", errs)
	}
}

func TestDuplicateObjectFails(t *testing.T) {
	expectError(t, validate(t, validDeployment+"\n---\n"+validDeployment, options{}), "duplicate of")
}
