// The TypeScript SDK v2 client (@modelcontextprotocol/client) against an MCP
// endpoint with a static Bearer credential (an API key): connect (its own
// handshake), tools/list, tools/call whoami. Prints one JSON line; exits 1
// on any error.
//
//   node ts/v2-client.mjs <mcp-url>   (the key in MCPGW_E2E_KEY)
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';

const url = process.argv[2];
const key = process.env.MCPGW_E2E_KEY;
try {
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers: { Authorization: `Bearer ${key}` } },
  });
  const client = new Client({ name: 'mcp-gateway-e2e-v2', version: '1.0.0' });
  await client.connect(transport);
  const tools = await client.listTools();
  const who = await client.callTool({ name: 'whoami', arguments: {} });
  const echo = await client.callTool({ name: 'echo', arguments: { text: 'v2 says hi' } });
  console.log(JSON.stringify({
    ok: true,
    protocol_version: transport.protocolVersion ?? '',
    session_id: transport.sessionId ?? '',
    tools: tools.tools.map((t) => t.name).sort(),
    whoami: who.structuredContent,
    echo: echo.structuredContent,
  }));
  await client.close();
} catch (err) {
  console.log(JSON.stringify({ ok: false, error: String(err?.stack ?? err) }));
  process.exit(1);
}
