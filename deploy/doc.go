// Package deploy holds no code: its folders hold the deployment files
// (compose/, prometheus/, grafana/, nginx/), each with its test beside it.
// Its own test checks the Dockerfile and .dockerignore, which stay at the
// repository's root (the build context of `docker build .` and compose's
// `build: .`) where a Go package would make the module root one.
package deploy
