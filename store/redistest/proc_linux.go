//go:build linux

package redistest

import "syscall"

// dieWithParent makes a server the kernel stops when the test binary dies,
// even without its cleanup running.
func dieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
