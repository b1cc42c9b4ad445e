// Command gohost is a go-plugin host for confd database plugins: it launches one plugin with
// hashicorp/go-plugin's plugin.NewClient, calls Configure and GetValues (and, with -watch,
// waits for one WatchPrefix message), prints what happened as JSON lines on stdout, and kills
// the client. It proves that a Go host runs plugins written with confd's Python plugin_sdk.
//
// Stdout events, one JSON object a line: started (pid, protocol version, network, address),
// values, watching, changed (keys), killed (plugin_exited); on failure: error (stage, error),
// and exit status 1. go-plugin's own log goes to stderr as hclog JSON.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"

	"confdinterop/proto"
	"confdinterop/shared"
)

type settingsFlag map[string]string

func (s settingsFlag) String() string { return fmt.Sprint(map[string]string(s)) }

func (s settingsFlag) Set(text string) error {
	key, value, ok := strings.Cut(text, "=")
	if !ok || key == "" {
		return fmt.Errorf("%q is not KEY=VALUE", text)
	}
	s[key] = value
	return nil
}

var out = json.NewEncoder(os.Stdout)

func emit(event string, fields map[string]interface{}) {
	fields["event"] = event
	_ = out.Encode(fields)
}

func main() {
	config := settingsFlag{}
	pluginPath := flag.String("plugin", "", "the plugin executable to run")
	keys := flag.String("keys", "/", "comma-separated keys for GetValues")
	watch := flag.String("watch", "", "after GetValues, wait for one WatchPrefix message on this prefix")
	watchTimeout := flag.Duration("watch-timeout", 20*time.Second, "how long -watch waits")
	autoMTLS := flag.Bool("automtls", false, "use go-plugin's AutoMTLS")
	flag.Var(config, "config", "a Configure setting KEY=VALUE (repeatable)")
	flag.Parse()
	if *pluginPath == "" {
		fmt.Fprintln(os.Stderr, "gohost: -plugin is required")
		os.Exit(2)
	}

	logger := hclog.New(&hclog.LoggerOptions{
		Name:       "gohost",
		Level:      hclog.Debug,
		Output:     os.Stderr,
		JSONFormat: true,
	})
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  shared.Handshake,
		Plugins:          shared.PluginMap(nil),
		Cmd:              exec.Command(*pluginPath),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         *autoMTLS,
		StartTimeout:     10 * time.Second,
		Logger:           logger,
	})
	defer client.Kill()
	err := run(client, config, *keys, *watch, *watchTimeout)
	client.Kill()
	if err != nil {
		os.Exit(1)
	}
}

func run(client *plugin.Client, config map[string]string, keys, watch string, watchTimeout time.Duration) error {
	protocol, err := client.Client()
	if err != nil {
		return report("start", err)
	}
	raw, err := protocol.Dispense(shared.PluginName)
	if err != nil {
		return report("dispense", err)
	}
	reattach := client.ReattachConfig()
	emit("started", map[string]interface{}{
		"pid":              reattach.Pid,
		"protocol_version": client.NegotiatedVersion(),
		"network":          reattach.Addr.Network(),
		"address":          reattach.Addr.String(),
	})
	if err := protocol.Ping(); err != nil {
		return report("ping", err)
	}
	database := raw.(proto.DatabaseClient)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := database.Configure(ctx, &proto.ConfigureRequest{Config: config}); err != nil {
		return report("configure", err)
	}
	reply, err := database.GetValues(ctx, &proto.GetValuesRequest{Keys: strings.Split(keys, ",")})
	if err != nil {
		return report("get_values", err)
	}
	emit("values", map[string]interface{}{"values": reply.Values})
	if watch != "" {
		if err := watchOnce(database, watch, watchTimeout); err != nil {
			return err
		}
	}
	client.Kill()
	emit("killed", map[string]interface{}{"plugin_exited": client.Exited(), "pid_gone": gone(reattach.Pid)})
	return nil
}

func watchOnce(database proto.DatabaseClient, prefix string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	stream, err := database.WatchPrefix(ctx, &proto.WatchPrefixRequest{Prefix: prefix, Keys: []string{prefix}})
	if err != nil {
		return report("watch", err)
	}
	emit("watching", map[string]interface{}{"prefix": prefix})
	message, err := stream.Recv()
	if err != nil {
		return report("watch", err)
	}
	emit("changed", map[string]interface{}{"keys": message.Keys})
	return nil
}

// gone reports whether process pid no longer exists (go-plugin has reaped it after Kill).
func gone(pid int) bool {
	return syscall.Kill(pid, 0) == syscall.ESRCH
}

func report(stage string, err error) error {
	emit("error", map[string]interface{}{"stage": stage, "error": err.Error()})
	return err
}
