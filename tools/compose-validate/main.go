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
//
// -env NAME=VALUE interpolates with those variables instead of an empty
// environment, and -config prints the resolved project as JSON, so a script can
// check what an override does (scripts/check-deploy.sh: the host ports).
package main

import (
	"context"
	"flag"
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

// envFlags collects repeated -env NAME=VALUE options.
type envFlags map[string]string

func (e envFlags) String() string { return fmt.Sprint(map[string]string(e)) }

func (e envFlags) Set(v string) error {
	name, value, ok := strings.Cut(v, "=")
	if !ok || name == "" {
		return fmt.Errorf("want NAME=VALUE, got %q", v)
	}
	e[name] = value
	return nil
}

func main() {
	env := envFlags{}
	flag.Var(env, "env", "NAME=VALUE to interpolate with (repeatable); by default the environment is empty, so the file must stand on its defaults")
	printConfig := flag.Bool("config", false, "print the resolved project as JSON on stdout (like `docker compose config --format json`)")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: compose-validate [-env NAME=VALUE]... [-config] docker-compose.yml [traefik-dynamic.yml]")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() < 1 || flag.NArg() > 2 {
		flag.Usage()
		os.Exit(2)
	}
	traefikFile := ""
	if flag.NArg() == 2 {
		traefikFile = flag.Arg(1)
	}
	problems, project, err := validateWith(flag.Arg(0), traefikFile, env)
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
	if *printConfig {
		out, err := project.MarshalJSON()
		if err != nil {
			fmt.Fprintln(os.Stderr, "compose-validate:", err)
			os.Exit(1)
		}
		fmt.Println(string(out))
	}
}

// validate checks the file as it stands on its own defaults (no environment).
func validate(path, traefikFile string) ([]string, error) {
	problems, _, err := validateWith(path, traefikFile, nil)
	return problems, err
}

// validateWith checks the file interpolated with env (nil: an empty environment)
// and returns the resolved project.
func validateWith(path, traefikFile string, env map[string]string) ([]string, *types.Project, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	problems := bareVariables(string(raw))
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, nil, err
	}
	envList := make([]string, 0, len(env))
	for k, v := range env {
		envList = append(envList, k+"="+v)
	}
	opts, err := cli.NewProjectOptions([]string{abs},
		cli.WithWorkingDirectory(filepath.Dir(abs)),
		// Only the given variables: the file must stand on its own defaults.
		cli.WithEnv(envList),
		cli.WithProfiles([]string{"*"}),
		cli.WithResolvedPaths(true),
		cli.WithConsistency(true),
	)
	if err != nil {
		return nil, nil, err
	}
	project, err := opts.LoadProject(context.Background())
	if err != nil {
		return nil, nil, fmt.Errorf("%s does not conform to the Compose Specification: %w", path, err)
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
	fmt.Fprintf(os.Stderr, "compose-validate: %s conforms to the Compose Specification (%d services: %s)\n",
		path, len(names), strings.Join(names, ", "))
	return problems, project, nil
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
