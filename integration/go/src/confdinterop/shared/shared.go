// Package shared holds what a confd database plugin and its host agree on: go-plugin's
// handshake (confd's magic cookie, protocol version 1) and the "database" gRPC plugin.
package shared

import (
	"context"

	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"confdinterop/proto"
)

// Handshake is confd's: the cookie from the confd plugin proposal, app protocol version 1.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "CONFD_PLUGIN_MAGIC_COOKIE",
	MagicCookieValue: "xtanpmnh5nqffr256vnevap59w86p3wmxkfkcp9hx4fzf5frjc3tf3tkcczcatyd",
}

// PluginName is the key of the database plugin in go-plugin's plugin set.
const PluginName = "database"

// DatabasePlugin serves (Impl set) or dispenses (host side) confd's proto.Database service.
type DatabasePlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl proto.DatabaseServer
}

// GRPCServer registers Impl on the plugin's gRPC server.
func (p *DatabasePlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	proto.RegisterDatabaseServer(s, p.Impl)
	return nil
}

// GRPCClient hands the host a proto.DatabaseClient on the plugin's connection.
func (p *DatabasePlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (interface{}, error) {
	return proto.NewDatabaseClient(c), nil
}

// PluginMap is the plugin set both sides pass to go-plugin.
func PluginMap(impl proto.DatabaseServer) map[string]plugin.Plugin {
	return map[string]plugin.Plugin{PluginName: &DatabasePlugin{Impl: impl}}
}
