// Package grafana holds no code: the compose demo's Grafana provisioning and
// dashboard, and the test that checks them against compose.yaml and the
// series internal/metrics defines.
package grafana
