// Command switchboardctl administers Switchboard's config service: apply a
// tenant YAML file, create, list, show and delete records, mint dev tokens.
// Run it without arguments for usage.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/switchboard-cc/switchboard/services/config/internal/ctl"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := ctl.Main(ctx, os.Args[1:], ctl.IO{
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr,
		LookupEnv: os.LookupEnv, ReadFile: os.ReadFile,
	})
	stop()
	os.Exit(code)
}
