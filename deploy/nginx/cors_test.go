package nginx

import (
	"strings"
	"testing"

	"github.com/mcpgateway/mcp-gateway/internal/routes"
)

// The template types the agents' CORS values out (nginx cannot read Go
// constants): each must be the one every other front uses
// (routes.AgentCORS*), wherever the template sets that header.
func TestTemplateCORSIsTheShared(t *testing.T) {
	for header, want := range map[string]string{
		"Access-Control-Allow-Methods":  `"` + routes.AgentCORSMethods + `"`,
		"Access-Control-Allow-Headers":  `"` + routes.AgentCORSAllowHeaders + `"`,
		"Access-Control-Expose-Headers": `"` + routes.AgentCORSExposeHeaders + `"`,
		"Access-Control-Max-Age":        routes.AgentCORSMaxAge,
	} {
		n := 0
		for _, line := range strings.Split(nginxTemplate, "\n") {
			rest, ok := strings.CutPrefix(strings.TrimSpace(line), "add_header "+header+" ")
			if !ok {
				continue
			}
			n++
			if got := strings.TrimSuffix(rest, " always;"); got != want {
				t.Errorf("%s %s, want %s", header, got, want)
			}
		}
		if n == 0 {
			t.Errorf("the template never sets %s", header)
		}
	}
}
