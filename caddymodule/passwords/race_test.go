//go:build race

package passwords

func init() { raceEnabled = true }
