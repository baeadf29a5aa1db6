// Package cli is the admin command line (mcp-gateway agents, keys, clients,
// healthcheck): flags, output, and calls to the admin API through
// admin.Client. Package admin is the server and its client.
package cli
