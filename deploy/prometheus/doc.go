// Package prometheus holds no code: prometheus.yml is the compose demo's
// Prometheus config, and the test here checks it scrapes the gateway's admin
// listener and Envoy's stats listener on the ports they serve.
package prometheus
