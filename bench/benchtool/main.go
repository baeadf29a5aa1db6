// Command benchtool is the glue of bench/run.sh: it mints the credentials,
// writes the Envoy-shaped CheckRequests and the protoset ghz needs, checks
// that each request gets the expected answer before it is timed, and turns
// ghz's JSON reports into a markdown table.
//
//	benchtool ports N                         N free loopback ports
//	benchtool mint -config F [-bad-signature] a JWT for alice at <public>/demo/mcp
//	benchtool protoset -o F                   FileDescriptorSet of envoy.service.auth.v3
//	benchtool request -auth V -o F            CheckRequest JSON (ghz -D; -binary: -B; -grpc-frame: h2load -d)
//	benchtool check -addr A -data F -want N   one Check; fail unless status N
//	benchtool report MANIFEST                 markdown table from ghz JSON reports
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: benchtool ports|mint|protoset|request|check|report …")
		os.Exit(2)
	}
	cmds := map[string]func([]string) error{
		"ports":    cmdPorts,
		"mint":     cmdMint,
		"protoset": cmdProtoset,
		"request":  cmdRequest,
		"check":    cmdCheck,
		"report":   cmdReport,
	}
	run, ok := cmds[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "benchtool: unknown command %q\n", os.Args[1])
		os.Exit(2)
	}
	if err := run(os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "benchtool %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}
