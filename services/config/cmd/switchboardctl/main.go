// Command switchboardctl administers Switchboard's config service: apply a
// tenant YAML file, create, list, show and delete records, sign in, mint
// dev tokens.
// Run it without arguments for usage.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/term"

	"github.com/switchboard-cc/switchboard/services/config/internal/ctl"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	io := ctl.IO{
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr,
		LookupEnv: os.LookupEnv, ReadFile: os.ReadFile,
	}
	if fd := int(os.Stdin.Fd()); term.IsTerminal(fd) {
		io.ReadPassword = func(prompt string) (string, error) {
			fmt.Fprint(os.Stderr, prompt)
			p, err := term.ReadPassword(fd)
			fmt.Fprintln(os.Stderr)
			return string(p), err
		}
	}
	code := ctl.Main(ctx, os.Args[1:], io)
	stop()
	os.Exit(code)
}
