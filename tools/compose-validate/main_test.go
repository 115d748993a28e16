package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeCompose(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "compose.yml")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

const goodCompose = `
services:
  init:
    image: example/app:1.0.0
    restart: "no"
    mem_limit: 64m
  app:
    image: example/app:1.0.0
    environment:
      TOKEN: ${TOKEN:-dev}
    healthcheck:
      test: ["CMD", "true"]
    depends_on:
      init:
        condition: service_completed_successfully
    mem_limit: 64m
`

func problemsOf(t *testing.T, body string) []string {
	t.Helper()
	problems, err := validate(writeCompose(t, body), "")
	if err != nil {
		return []string{err.Error()}
	}
	return problems
}

func expectProblem(t *testing.T, problems []string, want string) {
	t.Helper()
	for _, p := range problems {
		if strings.Contains(p, want) {
			return
		}
	}
	t.Fatalf("expected a problem containing %q, got %q", want, problems)
}

func TestGoodComposePasses(t *testing.T) {
	if p := problemsOf(t, goodCompose); len(p) > 0 {
		t.Fatalf("unexpected problems: %q", p)
	}
}

func TestSchemaViolationFails(t *testing.T) {
	expectProblem(t, problemsOf(t, strings.Replace(goodCompose, "healthcheck:", "healthchek:", 1)),
		"Compose Specification")
}

func TestVariableWithoutDefaultFails(t *testing.T) {
	expectProblem(t, problemsOf(t, strings.Replace(goodCompose, "${TOKEN:-dev}", "${TOKEN}", 1)), "no default")
}

func TestFloatingTagFails(t *testing.T) {
	expectProblem(t, problemsOf(t, strings.Replace(goodCompose, "example/app:1.0.0\n    environment", "example/app:latest\n    environment", 1)),
		"latest")
}

func TestMissingHealthcheckFails(t *testing.T) {
	body := strings.Replace(goodCompose, "    healthcheck:\n      test: [\"CMD\", \"true\"]\n", "", 1)
	expectProblem(t, problemsOf(t, body), "no healthcheck")
}

func TestDependsOnStartedFails(t *testing.T) {
	expectProblem(t, problemsOf(t, strings.Replace(goodCompose, "service_completed_successfully", "service_started", 1)),
		"waits only for")
}

const portsCompose = `
services:
  app:
    image: example/app:1.0.0
    ports:
      - "127.0.0.1:${APP_PORT:-8000}:8000"
    healthcheck:
      test: ["CMD", "true"]
    mem_limit: 64m
`

func publishedPort(t *testing.T, env map[string]string) string {
	t.Helper()
	problems, project, err := validateWith(writeCompose(t, portsCompose), "", env)
	if err != nil || len(problems) > 0 {
		t.Fatalf("unexpected problems: %v %q", err, problems)
	}
	ports := project.Services["app"].Ports
	if len(ports) != 1 {
		t.Fatalf("want one published port, got %+v", ports)
	}
	return ports[0].HostIP + ":" + ports[0].Published
}

func TestHostPortDefaultAndOverride(t *testing.T) {
	if got := publishedPort(t, nil); got != "127.0.0.1:8000" {
		t.Fatalf("default: got %s", got)
	}
	if got := publishedPort(t, map[string]string{"APP_PORT": "18000"}); got != "127.0.0.1:18000" {
		t.Fatalf("override: got %s", got)
	}
}
