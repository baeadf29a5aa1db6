// Package envoy holds the data-plane examples that put the gateway in front of
// MCP agents — envoy.yaml (ext_authz gRPC), envoy-http-service.yaml (ext_authz
// HTTP) and istio/ — and the tests that validate them without an Envoy
// binary: every Envoy bootstrap is decoded into go-control-plane types, every
// nested Any is unpacked and validated, and routing is simulated, by package
// envoytest (which the tests of deploy/ use too).
//
// Its code turns the agent registry into routes (AgentRoutes), which package
// deploy/nginx renders for nginx, and renders them for Istio (IstioConfig),
// for `mcp-gateway istio-config`.
package envoy
