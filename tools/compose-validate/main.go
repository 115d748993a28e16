// Command compose-validate loads a Compose file with compose-go, the library
// behind `docker compose config`: the file is checked against the Compose
// Specification JSON schema embedded in compose-go and then normalised the
// same way (interpolation, depends_on consistency, paths). On top of that it
// enforces the platform's conventions:
//   - no variable without a default, so the file works without a .env;
//   - every image tag pinned (never latest, never missing);
//   - every long-running service has a healthcheck, one-shot jobs (services
//     others wait for with service_completed_successfully) are exempt;
//   - depends_on always waits for health or completion, never mere start;
//   - every service has a memory limit;
//   - every bind-mounted file or directory exists;
//   - optionally, a Traefik dynamic configuration file is well-formed and
//     routes only to services of the project.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// A reference without ":-", "-", ":?" or "?" has no default and needs a .env.
var bareVariable = regexp.MustCompile(`\$\{[A-Za-z_][A-Za-z0-9_]*\}|\$[A-Za-z_][A-Za-z0-9_]*`)

func main() {
	if len(os.Args) < 2 || len(os.Args) > 3 {
		fmt.Fprintln(os.Stderr, "usage: compose-validate docker-compose.yml [traefik-dynamic.yml]")
		os.Exit(2)
	}
	traefikFile := ""
	if len(os.Args) == 3 {
		traefikFile = os.Args[2]
	}
	problems, err := validate(os.Args[1], traefikFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "compose-validate:", err)
		os.Exit(1)
	}
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(os.Stderr, "ERROR:", p)
		}
		fmt.Fprintf(os.Stderr, "compose-validate: %d problem(s)\n", len(problems))
		os.Exit(1)
	}
}

func validate(path, traefikFile string) ([]string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	problems := bareVariables(string(raw))
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	opts, err := cli.NewProjectOptions([]string{abs},
		cli.WithWorkingDirectory(filepath.Dir(abs)),
		// An empty environment: the file must stand on its own defaults.
		cli.WithEnv(nil),
		cli.WithProfiles([]string{"*"}),
		cli.WithResolvedPaths(true),
		cli.WithConsistency(true),
	)
	if err != nil {
		return nil, err
	}
	project, err := opts.LoadProject(context.Background())
	if err != nil {
		return nil, fmt.Errorf("%s does not conform to the Compose Specification: %w", path, err)
	}
	oneShot := oneShotServices(project)
	names := make([]string, 0, len(project.Services))
	for name := range project.Services {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		problems = append(problems, checkService(project.Services[name], oneShot[name])...)
	}
	if traefikFile != "" {
		services := map[string]bool{}
		for _, n := range names {
			services[n] = true
		}
		problems = append(problems, validateTraefik(traefikFile, services)...)
	}
	fmt.Printf("compose-validate: %s conforms to the Compose Specification (%d services: %s)\n",
		path, len(names), strings.Join(names, ", "))
	return problems, nil
}

func bareVariables(raw string) []string {
	var out []string
	for i, line := range strings.Split(raw, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		for _, m := range bareVariable.FindAllString(strings.ReplaceAll(line, "$$", ""), -1) {
			out = append(out, fmt.Sprintf("line %d: %s has no default (the file must work without a .env)", i+1, m))
		}
	}
	return out
}

// oneShotServices are the services some other service waits to complete.
func oneShotServices(p *types.Project) map[string]bool {
	out := map[string]bool{}
	for _, s := range p.Services {
		for dep, d := range s.DependsOn {
			if d.Condition == types.ServiceConditionCompletedSuccessfully {
				out[dep] = true
			}
		}
	}
	return out
}

func checkService(s types.ServiceConfig, oneShot bool) []string {
	var out []string
	add := func(format string, args ...any) {
		out = append(out, fmt.Sprintf("service %s: ", s.Name)+fmt.Sprintf(format, args...))
	}
	if err := pinned(s.Image); err != nil {
		add("%v", err)
	}
	if !oneShot && (s.HealthCheck == nil || s.HealthCheck.Disable || len(s.HealthCheck.Test) == 0) {
		add("no healthcheck (only one-shot jobs may go without)")
	}
	if oneShot && s.Restart != "" && s.Restart != types.RestartPolicyNo {
		add("one-shot job must not restart (restart: %q)", s.Restart)
	}
	for dep, d := range s.DependsOn {
		if d.Condition != types.ServiceConditionHealthy && d.Condition != types.ServiceConditionCompletedSuccessfully {
			add("depends_on %s waits only for %q; use service_healthy or service_completed_successfully", dep, d.Condition)
		}
	}
	if s.MemLimit == 0 && (s.Deploy == nil || s.Deploy.Resources.Limits == nil || s.Deploy.Resources.Limits.MemoryBytes == 0) {
		add("no memory limit")
	}
	for _, v := range s.Volumes {
		if v.Type != types.VolumeTypeBind {
			continue
		}
		if _, err := os.Stat(v.Source); err != nil {
			add("bind mount source %s does not exist", v.Source)
		}
	}
	return out
}

func pinned(image string) error {
	if image == "" {
		return fmt.Errorf("no image name (services that build need one, with a tag)")
	}
	if strings.Contains(image, "@sha256:") {
		return nil
	}
	name := image[strings.LastIndex(image, "/")+1:]
	i := strings.LastIndex(name, ":")
	switch {
	case i < 0 || name[i+1:] == "":
		return fmt.Errorf("image %s has no tag", image)
	case name[i+1:] == "latest":
		return fmt.Errorf("image %s uses the floating tag latest", image)
	}
	return nil
}
