package main

import (
	"encoding/json"
	"os"
	"time"
)

func main() {
	zones := map[string]*time.Location{
		"UTC":  time.UTC,
		"CET":  time.FixedZone("CET", 3600),
		"-0700": time.FixedZone("", -7*3600),
		"IST": time.FixedZone("IST", 5*3600+1800),
	}
	times := map[string]time.Time{}
	for name, loc := range zones {
		times[name+" nanos"] = time.Date(2024, 3, 5, 7, 8, 9, 123456789, loc)
		times[name+" pm"] = time.Date(1999, 12, 31, 23, 59, 58, 120000000, loc)
		times[name+" whole"] = time.Date(2021, 1, 10, 0, 0, 0, 0, loc)
	}
	layouts := []string{
		time.RFC3339, time.RFC3339Nano, time.RFC1123, time.RFC1123Z, time.RFC822, time.RFC822Z, time.RFC850,
		time.ANSIC, time.UnixDate, time.RubyDate, time.Kitchen, time.Stamp, time.StampMilli, time.StampMicro, time.StampNano,
		"2006-01-02 15:04:05.999999999 -0700 MST", "2006-01-02T15:04:05Z07:00", "2006-01-02", "15:04", "Jan _2 __2 002",
		"3:4:5 PM pm", "03 04 05", "06 1 2", "Z07 Z0700 Z070000 Z07:00:00 -07 -070000 -07:00:00", ".000 .999 ,000 ,999 .0 .9",
		"January Monday Mon Jan", "Month Mond Janx", "_2006 2006", "literal % text", "05.00", "MST",
	}
	type row struct {
		Time   string `json:"time"`
		Layout string `json:"layout"`
		Out    string `json:"out"`
		Unix   int64  `json:"unix"`
		YearDay int   `json:"yday"`
		Weekday string `json:"weekday"`
		Month string `json:"month"`
	}
	var rows []row
	for name, t := range times {
		for _, l := range layouts {
			rows = append(rows, row{name, l, t.Format(l), t.Unix(), t.YearDay(), t.Weekday().String(), t.Month().String()})
		}
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetEscapeHTML(false)
	enc.Encode(rows)
}
