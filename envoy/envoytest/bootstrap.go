// Package envoytest validates Envoy configuration without an Envoy binary, for
// the tests of every file that configures an Envoy in front of the gateway:
// a bootstrap is decoded into go-control-plane types the way Envoy reads it
// (DecodeBootstrap), every message and nested Any is validated
// (ValidateBootstrap, CheckResources, Walk), and Envoy's route selection is
// simulated on a listener's connection manager (ConnectionManagers, Route).
//
// It is test support: no production code imports it. Package envoy's
// TestValidationBites proves each check fails on the edit it guards against.
package envoytest

import (
	"errors"
	"fmt"
	"regexp"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/known/anypb"
	"sigs.k8s.io/yaml"

	// Every extension type an Envoy config here names in "@type" must be
	// linked in, or protojson cannot resolve it.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/formatter/req_without_query/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/resource_monitors/downstream_connections/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
)

// The HTTP filters the gateway's Envoy configs use, by name.
const (
	FilterCORS     = "envoy.filters.http.cors"
	FilterExtAuthz = "envoy.filters.http.ext_authz"
	FilterHeaders  = "envoy.filters.http.header_mutation"
	FilterRouter   = "envoy.filters.http.router"
)

// IdentityHeaders are the headers only the gateway may set upstream.
var IdentityHeaders = []string{"x-mcp-user", "x-mcp-agent", "x-mcp-client-id", "x-mcp-scope", "x-mcp-credential", "x-mcp-identity"}

// DecodeBootstrap turns YAML into a Bootstrap the way Envoy reads it: unknown
// fields and unresolvable "@type"s are errors.
func DecodeBootstrap(y []byte) (*bootstrapv3.Bootstrap, error) {
	j, err := yaml.YAMLToJSON(y)
	if err != nil {
		return nil, fmt.Errorf("yaml: %w", err)
	}
	b := &bootstrapv3.Bootstrap{}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(j, b); err != nil {
		return nil, fmt.Errorf("protojson: %w", err)
	}
	return b, nil
}

// validator is what protoc-gen-validate generates on every Envoy message.
type validator interface{ ValidateAll() error }

// walkState collects what the recursive walk finds.
type walkState struct {
	errs        []error
	clusterRefs map[string][]string // cluster name → where referenced
}

func (s *walkState) fail(format string, a ...any) { s.errs = append(s.errs, fmt.Errorf(format, a...)) }

// walk visits m and every message below it, unpacking each Any and running its
// ValidateAll (the Bootstrap's own ValidateAll stops at Any), and records
// cluster references, regexes that do not compile and deprecated fields.
func (s *walkState) walk(m protoreflect.Message, path string) {
	switch v := m.Interface().(type) {
	case *anypb.Any:
		inner, err := v.UnmarshalNew()
		if err != nil {
			s.fail("%s: unpack %s: %w", path, v.GetTypeUrl(), err)
			return
		}
		if iv, ok := inner.(validator); ok {
			if err := iv.ValidateAll(); err != nil {
				s.fail("%s (%s): %w", path, v.GetTypeUrl(), err)
			}
		}
		s.walk(inner.ProtoReflect(), path+"<"+string(inner.ProtoReflect().Descriptor().FullName())+">")
		return
	case *matcherv3.RegexMatcher:
		if _, err := regexp.Compile(v.GetRegex()); err != nil {
			s.fail("%s: regex %q does not compile: %w", path, v.GetRegex(), err)
		}
	case *routev3.RouteAction:
		if c, ok := v.GetClusterSpecifier().(*routev3.RouteAction_Cluster); ok {
			s.ref(c.Cluster, path)
		}
		for _, w := range v.GetWeightedClusters().GetClusters() {
			s.ref(w.GetName(), path)
		}
		for _, mp := range v.GetRequestMirrorPolicies() {
			s.ref(mp.GetCluster(), path)
		}
	case *corev3.GrpcService_EnvoyGrpc:
		s.ref(v.GetClusterName(), path)
	case *corev3.HttpUri:
		s.ref(v.GetCluster(), path)
	}
	m.Range(func(fd protoreflect.FieldDescriptor, val protoreflect.Value) bool {
		fpath := path + "." + string(fd.Name())
		if fd.Options().(*descriptorpb.FieldOptions).GetDeprecated() {
			s.fail("%s: field is deprecated", fpath)
		}
		switch {
		case fd.IsList():
			l := val.List()
			for i := 0; i < l.Len(); i++ {
				p := fmt.Sprintf("%s[%d]", fpath, i)
				if fd.Kind() == protoreflect.MessageKind {
					s.walk(l.Get(i).Message(), p)
				} else if fd.Kind() == protoreflect.EnumKind {
					s.enum(fd, l.Get(i).Enum(), p)
				}
			}
		case fd.IsMap():
			if fd.MapValue().Kind() == protoreflect.MessageKind {
				val.Map().Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
					s.walk(v.Message(), fmt.Sprintf("%s[%s]", fpath, k.String()))
					return true
				})
			}
		case fd.Kind() == protoreflect.MessageKind:
			s.walk(val.Message(), fpath)
		case fd.Kind() == protoreflect.EnumKind:
			s.enum(fd, val.Enum(), fpath)
		}
		return true
	})
}

// enum records an enum value that is undefined or deprecated.
func (s *walkState) enum(fd protoreflect.FieldDescriptor, n protoreflect.EnumNumber, path string) {
	ev := fd.Enum().Values().ByNumber(n)
	if ev == nil {
		s.fail("%s: enum value %d is not defined", path, n)
	} else if ev.Options().(*descriptorpb.EnumValueOptions).GetDeprecated() {
		s.fail("%s: enum value %s is deprecated", path, ev.Name())
	}
}

// ref records that path names cluster.
func (s *walkState) ref(cluster, path string) {
	s.clusterRefs[cluster] = append(s.clusterRefs[cluster], path)
}

// Walk reports what the walk finds in m and every message below it: an Any
// that does not unpack or validate, a regex that does not compile, a
// deprecated field or enum value. It works on any proto (Istio's too).
func Walk(m proto.Message, path string) error {
	s := &walkState{clusterRefs: map[string][]string{}}
	s.walk(m.ProtoReflect(), path)
	return errors.Join(s.errs...)
}

// CheckResources checks xDS resources as an ADS server sends them: each
// passes its ValidateAll and Walk, and every cluster they name is one of the
// clusters among msgs.
func CheckResources(msgs ...proto.Message) error {
	s := &walkState{clusterRefs: map[string][]string{}}
	clusters := map[string]bool{}
	for _, m := range msgs {
		if c, ok := m.(*clusterv3.Cluster); ok {
			clusters[c.GetName()] = true
		}
		if err := m.(validator).ValidateAll(); err != nil {
			s.fail("%T: %w", m, err)
		}
		s.walk(m.ProtoReflect(), fmt.Sprintf("%T", m))
	}
	for name, where := range s.clusterRefs {
		if !clusters[name] {
			s.fail("missing cluster %q referenced at %v", name, where)
		}
	}
	return errors.Join(s.errs...)
}
