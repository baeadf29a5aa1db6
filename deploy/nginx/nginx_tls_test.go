package nginx

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpgateway/mcp-gateway/envoy"
	"github.com/mcpgateway/mcp-gateway/store"
)

// selfSigned is a certificate for localhost and its PEM.
func selfSigned(t *testing.T) (tls.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"}, DNSNames: []string{"localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// An https agent is reached over TLS with its host name as SNI and its
// certificate verified against the CA file; with another CA nginx refuses
// to send the request (502), never falling back to an unverified one.
func TestNginxHTTPSAgent(t *testing.T) {
	cert, certPEM := selfSigned(t)
	var sni atomic.Value
	agent := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sni.Store(r.TLS.ServerName)
		w.Write([]byte("agent " + r.Host + " " + r.URL.Path))
	}))
	agent.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	agent.StartTLS()
	defer agent.Close()
	gwSrv := httptest.NewServer(&fakeGateway{})
	defer gwSrv.Close()
	_, port, err := net.SplitHostPort(agent.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	routes, errs := envoy.AgentRoutes([]store.Agent{{AgentSpec: store.AgentSpec{ID: "secure", Upstream: "https://localhost:" + port + "/tls/mcp"}}})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, caFile string
		status       int
	}{{"trusted", ca, 200}, {"untrusted", DefaultCAFile, 502}} {
		t.Run(c.name, func(t *testing.T) {
			conf, err := NginxAgents(routes, NginxAgentsOptions{CAFile: c.caFile})
			if err != nil {
				t.Fatal(err)
			}
			agents := filepath.Join(t.TempDir(), "agents.conf")
			if err := os.WriteFile(agents, []byte(conf), 0o644); err != nil {
				t.Fatal(err)
			}
			listen := freePort(t)
			startNginx(t, NginxParams{Listen: listen, GatewayHTTP: strings.TrimPrefix(gwSrv.URL, "http://"), AgentsConf: agents})
			req, _ := http.NewRequest("POST", "http://"+listen+"/secure/mcp", strings.NewReader("{}"))
			req.Header.Set("Authorization", "Bearer good")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != c.status {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, b, c.status)
			}
			if c.status == 200 && (string(b) != "agent localhost:"+port+" /tls/mcp" || sni.Load() != "localhost") {
				t.Errorf("agent answered %q with SNI %v", b, sni.Load())
			}
		})
	}
}
