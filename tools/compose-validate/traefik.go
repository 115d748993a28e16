package main

import (
	"bytes"
	"fmt"
	"os"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Traefik's own module is not used (a very large module graph for one file
// format); this hand-written subset of the dynamic configuration is decoded
// strictly, so a misspelled key fails, and references are resolved.
type traefikDynamic struct {
	HTTP struct {
		Routers     map[string]traefikRouter     `yaml:"routers"`
		Middlewares map[string]traefikMiddleware `yaml:"middlewares"`
		Services    map[string]traefikService    `yaml:"services"`
	} `yaml:"http"`
}

type traefikRouter struct {
	EntryPoints []string `yaml:"entryPoints"`
	Rule        string   `yaml:"rule"`
	Middlewares []string `yaml:"middlewares"`
	Service     string   `yaml:"service"`
	Priority    int      `yaml:"priority"`
}

type traefikMiddleware struct {
	StripPrefix *struct {
		Prefixes   []string `yaml:"prefixes"`
		ForceSlash *bool    `yaml:"forceSlash"`
	} `yaml:"stripPrefix"`
	Headers   map[string]any `yaml:"headers"`
	RateLimit map[string]any `yaml:"rateLimit"`
	Buffering map[string]any `yaml:"buffering"`
}

type traefikService struct {
	LoadBalancer struct {
		Servers []struct {
			URL string `yaml:"url"`
		} `yaml:"servers"`
		HealthCheck *struct {
			Path     string `yaml:"path"`
			Interval string `yaml:"interval"`
			Timeout  string `yaml:"timeout"`
		} `yaml:"healthCheck"`
		PassHostHeader *bool `yaml:"passHostHeader"`
	} `yaml:"loadBalancer"`
}

// validateTraefik checks a Traefik dynamic configuration file and that every
// backend URL names a service of the compose project.
func validateTraefik(path string, composeServices map[string]bool) []string {
	raw, err := os.ReadFile(path)
	if err != nil {
		return []string{err.Error()}
	}
	var cfg traefikDynamic
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		return []string{fmt.Sprintf("%s: %v", path, err)}
	}
	var out []string
	add := func(format string, args ...any) { out = append(out, path+": "+fmt.Sprintf(format, args...)) }
	h := cfg.HTTP
	if len(h.Routers) == 0 {
		add("no routers")
	}
	for name, r := range h.Routers {
		if r.Rule == "" {
			add("router %s has no rule", name)
		}
		if _, ok := h.Services[r.Service]; !ok {
			add("router %s uses undefined service %q", name, r.Service)
		}
		for _, m := range r.Middlewares {
			if _, ok := h.Middlewares[m]; !ok {
				add("router %s uses undefined middleware %q", name, m)
			}
		}
	}
	for name, s := range h.Services {
		if len(s.LoadBalancer.Servers) == 0 {
			add("service %s has no servers", name)
		}
		for _, srv := range s.LoadBalancer.Servers {
			host := strings.TrimPrefix(strings.TrimPrefix(srv.URL, "http://"), "https://")
			host = strings.SplitN(strings.SplitN(host, "/", 2)[0], ":", 2)[0]
			if !composeServices[host] {
				add("service %s points at %q, which is not a compose service", name, srv.URL)
			}
		}
	}
	for name, m := range h.Middlewares {
		if m.StripPrefix != nil && len(m.StripPrefix.Prefixes) == 0 {
			add("middleware %s strips no prefix", name)
		}
	}
	if len(out) == 0 {
		names := make([]string, 0, len(h.Routers))
		for n := range h.Routers {
			names = append(names, n)
		}
		sort.Strings(names)
		fmt.Printf("compose-validate: %s is a valid Traefik dynamic configuration (routers: %s)\n", path, strings.Join(names, ", "))
	}
	return out
}
