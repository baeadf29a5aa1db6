// Package nginx is the nginx front: the auth_request template
// (mcp-gateway.conf.template) and its njs module, rendered from Go
// (NginxSite, NginxStandalone), and the per-agent include that
// `mcp-gateway nginx-config` writes from the registry's routes (NginxAgents,
// over envoy.AgentRoutes). Its tests run a real nginx between a fake gateway
// and a fake agent.
package nginx
