// Package console embeds the agent console: a single page that signs an
// agent in and speaks the agent websocket protocol.
package console

import (
	"embed"
	"io/fs"
)

//go:embed static
var files embed.FS

// FS is the console's files, index.html at the root.
func FS() fs.FS {
	sub, err := fs.Sub(files, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return sub
}
