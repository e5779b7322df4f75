package sessions

// CheckRedisURL reports whether rawURL is a Redis URL that NewRedisPool
// accepts (redis://, rediss://, redis+sentinel://,
// rediss+sentinel://, unix://), without connecting. Its errors quote only
// the redacted URL.
func CheckRedisURL(rawURL string) error {
	_, err := parseRedisURL(rawURL)
	return err
}
