// Package envoy holds the data-plane examples that put the gateway in front of
// MCP agents — envoy.yaml (ext_authz gRPC), envoy-http-service.yaml (ext_authz
// HTTP), istio/ and nginx/ — and the tests that validate them without an Envoy
// binary: every Envoy bootstrap is decoded into go-control-plane types, every
// nested Any is unpacked and validated, and routing is simulated. The tests
// also check compose.yaml, the Dockerfile and the Prometheus/Grafana files.
//
// The package's only code renders the nginx template (NginxSite,
// NginxStandalone) for tests that run a real nginx.
package envoy
