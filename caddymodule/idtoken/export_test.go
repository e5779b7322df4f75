package idtoken

// CachedTokens counts the cached tokens.
func CachedTokens(s *Signer) int {
	n := 0
	s.cache.Range(func(any, any) bool { n++; return true })
	return n
}
