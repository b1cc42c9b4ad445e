// Command confd-database-gomem is a confd database plugin written against hashicorp/go-plugin:
// keys come from a JSON file (setting `path`), and WatchPrefix polls that file. It exists to
// prove that confd hosts Go plugins built with go-plugin. GOMEM_DESCRIBE=off makes it answer
// Describe UNIMPLEMENTED, like a plugin built before Describe.
package main

import (
	"os"

	hclog "github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"

	"confdinterop/shared"
)

func main() {
	// go-plugin swaps os.Stderr for a pipe after the handshake: log to the real one.
	logger := hclog.New(&hclog.LoggerOptions{
		Name:       "gomem",
		Level:      hclog.Debug,
		Output:     os.Stderr,
		JSONFormat: true,
	})
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: shared.Handshake,
		Plugins:         shared.PluginMap(&jsonStore{log: logger, describe: os.Getenv("GOMEM_DESCRIBE") != "off"}),
		GRPCServer:      plugin.DefaultGRPCServer,
		Logger:          logger,
	})
}
