package testredis

import (
	"time"

	"github.com/gomodule/redigo/redis"
)

func dial(url string) (redis.Conn, error) {
	return redis.DialURL(url,
		redis.DialConnectTimeout(time.Second),
		redis.DialReadTimeout(2*time.Second),
		redis.DialWriteTimeout(2*time.Second))
}

// ping checks that the server at url answers PING with PONG.
func ping(url string) error {
	c, err := dial(url)
	if err != nil {
		return err
	}
	defer c.Close()
	reply, err := redis.String(c.Do("PING"))
	if err != nil {
		return err
	}
	if reply != "PONG" {
		return errNotPong
	}
	return nil
}

// deletePrefix deletes all keys starting with prefix, using SCAN so that a
// shared server is not blocked by KEYS.
func deletePrefix(url, prefix string) error {
	c, err := dial(url)
	if err != nil {
		return err
	}
	defer c.Close()
	cursor := "0"
	for {
		reply, err := redis.Values(c.Do("SCAN", cursor, "MATCH", prefix+"*", "COUNT", 1000))
		if err != nil {
			return err
		}
		var keys []string
		if _, err := redis.Scan(reply, &cursor, &keys); err != nil {
			return err
		}
		if len(keys) > 0 {
			args := redis.Args{}.AddFlat(keys)
			if _, err := c.Do("DEL", args...); err != nil {
				return err
			}
		}
		if cursor == "0" {
			return nil
		}
	}
}
