package main

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Traefik's own Go module is not used here (its module graph is very large for
// one CRD), so the Middleware kind is described by a hand-written structural
// type covering the middlewares the chart may use. Decoding is as strict as for
// the built-in kinds: an unknown or misspelled field fails.
var middlewareGVK = schema.GroupVersionKind{Group: "traefik.io", Version: "v1alpha1", Kind: "Middleware"}

// Middleware is traefik.io/v1alpha1 Middleware (subset).
type Middleware struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              MiddlewareSpec `json:"spec"`
}

// MiddlewareSpec holds exactly one middleware configuration.
type MiddlewareSpec struct {
	StripPrefix      *StripPrefix      `json:"stripPrefix,omitempty"`
	StripPrefixRegex *StripPrefixRegex `json:"stripPrefixRegex,omitempty"`
	AddPrefix        *AddPrefix        `json:"addPrefix,omitempty"`
	RedirectScheme   *RedirectScheme   `json:"redirectScheme,omitempty"`
	RateLimit        *RateLimit        `json:"rateLimit,omitempty"`
	Buffering        *Buffering        `json:"buffering,omitempty"`
	Compress         *Compress         `json:"compress,omitempty"`
}

// StripPrefix removes the first matching prefix from the request path.
type StripPrefix struct {
	Prefixes   []string `json:"prefixes"`
	ForceSlash *bool    `json:"forceSlash,omitempty"`
}

// StripPrefixRegex removes a prefix matched by a regular expression.
type StripPrefixRegex struct {
	Regex []string `json:"regex"`
}

// AddPrefix prepends a prefix to the request path.
type AddPrefix struct {
	Prefix string `json:"prefix"`
}

// RedirectScheme redirects to another scheme.
type RedirectScheme struct {
	Scheme    string `json:"scheme"`
	Port      string `json:"port,omitempty"`
	Permanent bool   `json:"permanent,omitempty"`
}

// RateLimit limits the request rate per source.
type RateLimit struct {
	Average int64  `json:"average,omitempty"`
	Period  string `json:"period,omitempty"`
	Burst   int64  `json:"burst,omitempty"`
}

// Buffering limits request and response body sizes.
type Buffering struct {
	MaxRequestBodyBytes  int64  `json:"maxRequestBodyBytes,omitempty"`
	MemRequestBodyBytes  int64  `json:"memRequestBodyBytes,omitempty"`
	MaxResponseBodyBytes int64  `json:"maxResponseBodyBytes,omitempty"`
	MemResponseBodyBytes int64  `json:"memResponseBodyBytes,omitempty"`
	RetryExpression      string `json:"retryExpression,omitempty"`
}

// Compress compresses responses.
type Compress struct {
	ExcludedContentTypes []string `json:"excludedContentTypes,omitempty"`
	MinResponseBodyBytes int64    `json:"minResponseBodyBytes,omitempty"`
}

func (m *Middleware) validate() []string {
	set := 0
	s := m.Spec
	for _, p := range []bool{s.StripPrefix != nil, s.StripPrefixRegex != nil, s.AddPrefix != nil,
		s.RedirectScheme != nil, s.RateLimit != nil, s.Buffering != nil, s.Compress != nil} {
		if p {
			set++
		}
	}
	var errs []string
	if set != 1 {
		errs = append(errs, fmt.Sprintf("spec must configure exactly one middleware, found %d", set))
	}
	if s.StripPrefix != nil && len(s.StripPrefix.Prefixes) == 0 {
		errs = append(errs, "stripPrefix.prefixes is empty")
	}
	for _, p := range stripPrefixes(s) {
		if p == "" || p[0] != '/' {
			errs = append(errs, fmt.Sprintf("prefix %q must start with /", p))
		}
	}
	return errs
}

func stripPrefixes(s MiddlewareSpec) []string {
	if s.StripPrefix == nil {
		return nil
	}
	return s.StripPrefix.Prefixes
}

// DeepCopyObject satisfies runtime.Object.
func (m *Middleware) DeepCopyObject() runtime.Object {
	c := *m
	m.ObjectMeta.DeepCopyInto(&c.ObjectMeta)
	return &c
}
