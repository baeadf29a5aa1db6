// njs module of the MCP Gateway's nginx template (mcp-gateway.conf.template),
// imported there with js_import. Needs nginx's JavaScript module (Debian:
// libnginx-mod-http-js, loaded by default; the official nginx image:
// load_module modules/ngx_http_js_module.so;).
//
// nginx cannot remove request headers by pattern, yet no client x-mcp-*
// header (the gateway's identity headers, whatever the name) may reach an
// agent, while SEP-2243's Mcp-Param-<Name> headers must. So the template
// forwards a request's headers, credentials and cookies aside, unless
// clientIdentity finds an x-mcp-* header the client sent: such a request is
// forwarded with a fixed list of headers only.

// clientIdentity is "1" when the client sent a header named x-mcp-* (any
// case), else "".
function clientIdentity(r) {
    var raw = r.rawHeadersIn;
    for (var i = 0; i < raw.length; i++) {
        if (raw[i][0].toLowerCase().indexOf('x-mcp-') === 0) {
            return '1';
        }
    }
    return '';
}

export default {clientIdentity};
