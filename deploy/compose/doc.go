// Package compose holds no code: gateway.yaml is the gateway's config in the
// compose demo, and the test here checks compose.yaml (at the repository's
// root, where `docker compose up` finds it) with that config: services,
// mounts, pinned images, health checks, and the addresses that tie the
// gateway, Envoy and the demo agent together.
package compose
