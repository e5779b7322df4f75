//go:build race

package caddymodule_test

func init() { raceEnabled = true }
