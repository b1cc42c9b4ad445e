package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"confdinterop/proto"
)

// settings this backend accepts; anything else is refused so a typo is not silently ignored.
var settings = map[string]string{
	"path":     "JSON file holding an object of key -> string value (required)",
	"interval": "how often WatchPrefix polls the file, as a Go duration (default 50ms)",
}

// jsonStore is a confd database read from a JSON file, which WatchPrefix polls for changes.
// With describe false it answers Describe UNIMPLEMENTED, as a plugin built before that
// method existed does.
type jsonStore struct {
	proto.UnimplementedDatabaseServer
	log      hclog.Logger
	describe bool

	mu       sync.Mutex
	path     string
	interval time.Duration
}

// Describe tells the host what this plugin is and which settings it accepts.
func (s *jsonStore) Describe(ctx context.Context, req *proto.DescribeRequest) (*proto.DescribeResponse, error) {
	if !s.describe {
		return s.UnimplementedDatabaseServer.Describe(ctx, req)
	}
	interval := "50ms"
	return &proto.DescribeResponse{
		Name:        "gomem",
		Description: "keys from a JSON file, watched by polling (a go-plugin test plugin)",
		Settings: []*proto.SettingDescription{
			{Name: "path", Type: "str", Help: settings["path"], Required: true},
			{Name: "interval", Type: "duration", Default: &interval, Help: settings["interval"]},
		},
		CanWatch: true,
	}, nil
}

func (s *jsonStore) Configure(_ context.Context, req *proto.ConfigureRequest) (*proto.ConfigureResponse, error) {
	for name := range req.Config {
		if _, ok := settings[name]; !ok {
			return nil, status.Errorf(codes.InvalidArgument,
				"backend 'gomem': unknown setting %q (known: interval, path)", name)
		}
	}
	path := req.Config["path"]
	if path == "" {
		return nil, status.Error(codes.InvalidArgument, "backend 'gomem': setting 'path' is required")
	}
	interval := 50 * time.Millisecond
	if raw, ok := req.Config["interval"]; ok {
		parsed, err := time.ParseDuration(raw)
		if err != nil || parsed <= 0 {
			return nil, status.Errorf(codes.InvalidArgument,
				"backend 'gomem': setting 'interval' is %q, not a positive duration like 50ms", raw)
		}
		interval = parsed
	}
	data, err := load(path)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "backend 'gomem': setting 'path': %v", err)
	}
	s.mu.Lock()
	s.path, s.interval = path, interval
	s.mu.Unlock()
	s.log.Info("configured", "path", path, "keys", len(data))
	return &proto.ConfigureResponse{}, nil
}

func (s *jsonStore) options() (string, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.path, s.interval
}

func (s *jsonStore) GetValues(_ context.Context, req *proto.GetValuesRequest) (*proto.GetValuesResponse, error) {
	path, _ := s.options()
	if path == "" {
		return nil, status.Error(codes.FailedPrecondition, "backend 'gomem': not configured")
	}
	data, err := load(path)
	if err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "backend 'gomem': %v", err)
	}
	found := map[string]string{}
	for key, value := range data {
		for _, requested := range req.Keys {
			if under(key, requested) {
				found[key] = value
				break
			}
		}
	}
	if !req.Lists {
		return &proto.GetValuesResponse{Values: found}, nil
	}
	reply := &proto.GetValuesResponse{}
	for _, key := range sortedKeys(found) {
		reply.ListKeys = append(reply.ListKeys, key)
		reply.ListValues = append(reply.ListValues, found[key])
	}
	return reply, nil
}

// WatchPrefix polls the file and sends one message, naming the changed keys, per change
// under the prefix; it returns when the host cancels the stream.
func (s *jsonStore) WatchPrefix(req *proto.WatchPrefixRequest, stream proto.Database_WatchPrefixServer) error {
	path, interval := s.options()
	if path == "" {
		return status.Error(codes.FailedPrecondition, "backend 'gomem': not configured")
	}
	seen := below(path, req.Prefix)
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	s.log.Debug("watch started", "prefix", req.Prefix)
	for {
		select {
		case <-stream.Context().Done():
			s.log.Debug("watch cancelled", "prefix", req.Prefix)
			return nil
		case <-ticker.C:
		}
		now := below(path, req.Prefix)
		changed := diff(seen, now)
		if len(changed) == 0 {
			continue
		}
		seen = now
		if err := stream.Send(&proto.WatchPrefixResponse{Keys: changed}); err != nil {
			return err
		}
	}
}

// load reads the JSON object of string values at path.
func load(path string) (map[string]string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	data := map[string]string{}
	if err := json.Unmarshal(raw, &data); err != nil {
		return nil, fmt.Errorf("%s is not a JSON object of string values: %v", path, err)
	}
	return data, nil
}

// below is the file's entries under prefix; an unreadable file counts as empty, so the
// watch reports its keys again once it is readable.
func below(path, prefix string) map[string]string {
	data, err := load(path)
	if err != nil {
		return map[string]string{}
	}
	for key := range data {
		if !under(key, prefix) {
			delete(data, key)
		}
	}
	return data
}

// under is confd's prefix rule: "/app" holds "/app" and "/app/x", not "/apple".
func under(key, requested string) bool {
	if requested == "" || requested == "/" {
		return true
	}
	base := strings.TrimRight(requested, "/")
	return key == base || strings.HasPrefix(key, base+"/")
}

// diff names the keys added, changed or removed between old and new, sorted.
func diff(old, new map[string]string) []string {
	var changed []string
	for key, value := range new {
		if previous, ok := old[key]; !ok || previous != value {
			changed = append(changed, key)
		}
	}
	for key := range old {
		if _, ok := new[key]; !ok {
			changed = append(changed, key)
		}
	}
	sort.Strings(changed)
	return changed
}

func sortedKeys(values map[string]string) []string {
	keys := make([]string, 0, len(values))
	for key := range values {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	return keys
}
