package main

import (
	"encoding/json"
	"fmt"
	"fmtgen/memkv"
	"math"
	"os"
)

type unusedKV struct {
	Key   string
	Value string
}

func decode(a map[string]interface{}) interface{} {
	for k, v := range a {
		switch k {
		case "s":
			return v.(string)
		case "i":
			return int(v.(float64))
		case "f":
			if s, ok := v.(string); ok {
				switch s {
				case "inf":
					return math.Inf(1)
				case "-inf":
					return math.Inf(-1)
				case "nan":
					return math.NaN()
				case "-0":
					return math.Copysign(0, -1)
				}
			}
			return v.(float64)
		case "b":
			return v.(bool)
		case "n":
			return nil
		case "u8":
			return uint8(v.(float64))
		case "ss":
			out := []string{}
			for _, x := range v.([]interface{}) {
				out = append(out, x.(string))
			}
			return out
		case "is":
			out := []int{}
			for _, x := range v.([]interface{}) {
				out = append(out, int(x.(float64)))
			}
			return out
		case "m":
			return v.(map[string]interface{})
		case "a":
			return v.([]interface{})
		case "kv":
			x := v.([]interface{})
			return memkv.KVPair{x[0].(string), x[1].(string)}
		case "kvs":
			out := []memkv.KVPair{}
			for _, p := range v.([]interface{}) {
				x := p.([]interface{})
				out = append(out, memkv.KVPair{x[0].(string), x[1].(string)})
			}
			return out
		}
	}
	panic("bad arg")
}

func main() {
	var cases [][]interface{}
	if err := json.NewDecoder(os.Stdin).Decode(&cases); err != nil {
		panic(err)
	}
	out := [][]interface{}{}
	for _, c := range cases {
		kind := c[0].(string)
		args := []interface{}{}
		for _, a := range c[2].([]interface{}) {
			args = append(args, decode(a.(map[string]interface{})))
		}
		var res string
		switch kind {
		case "printf":
			res = fmt.Sprintf(c[1].(string), args...)
		case "print":
			res = fmt.Sprint(args...)
		case "println":
			res = fmt.Sprintln(args...)
		}
		out = append(out, []interface{}{c[0], c[1], c[2], res})
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", " ")
	enc.Encode(out)
}
