package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// runHashPassword reads a password from stdin (never argv, which leaks into
// shell history and ps) and prints its bcrypt hash for login.users[].password_hash.
func runHashPassword(_ context.Context, args []string, stdout io.Writer) error {
	if len(args) == 1 && askedHelp(args) {
		fmt.Fprintln(stdout, "usage: echo PASSWORD | mcp-gateway hash-password\n\nPrint the bcrypt hash of the password read from stdin (never argv) for login.users[].password_hash.")
		return nil
	}
	if len(args) > 0 {
		return errors.New("takes no arguments: pipe the password on stdin")
	}
	return hashPassword(os.Stdin, stdout)
}

func hashPassword(in io.Reader, out io.Writer) error {
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read password: %w", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	if len(pw) < 8 {
		return errors.New("password must be at least 8 characters")
	}
	if len(pw) > 72 {
		return errors.New("password must be at most 72 bytes (bcrypt's limit)")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.DefaultCost)
	if err != nil {
		return fmt.Errorf("hash: %w", err)
	}
	_, err = fmt.Fprintln(out, string(h))
	return err
}
