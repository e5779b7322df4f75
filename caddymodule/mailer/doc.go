// Package mailer sends the account mails (password reset, e-mail
// verification) over SMTP with github.com/wneessen/go-mail: plain text,
// one connection per mail, every step bounded by a timeout, and a small
// queue with one sender so that an HTTP request never waits for SMTP. It
// knows nothing of HTTP or Caddy.
//
// Server URLs: smtp://[user:pass@]host[:port] (port 25 by default; STARTTLS
// whenever the server offers it, plain text otherwise) and
// smtps://[user:pass@]host[:port] (implicit TLS, port 465 by default). A
// CA file replaces the system roots for verifying the server.
package mailer
