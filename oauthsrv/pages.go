package oauthsrv

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"net/http"
	"time"
)

//go:embed templates/*.html
var templateFS embed.FS

// pages are the browser-facing HTML templates, each a clone of the layout.
type pages struct {
	login, consent, errorPage *template.Template
	account                   *template.Template
	csp                       string
}

func loadPages() (*pages, error) {
	layoutSrc, err := templateFS.ReadFile("templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("oauthsrv: templates: %w", err)
	}
	layout, err := template.New("layout.html").Parse(string(layoutSrc))
	if err != nil {
		return nil, fmt.Errorf("oauthsrv: templates: %w", err)
	}
	page := func(name string) (*template.Template, error) {
		t, err := layout.Clone()
		if err != nil {
			return nil, err
		}
		if t, err = t.ParseFS(templateFS, "templates/"+name); err != nil {
			return nil, fmt.Errorf("oauthsrv: templates: %w", err)
		}
		return t.Lookup("layout"), nil
	}
	p := &pages{}
	if p.login, err = page("login.html"); err != nil {
		return nil, err
	}
	if p.consent, err = page("consent.html"); err != nil {
		return nil, err
	}
	if p.errorPage, err = page("error.html"); err != nil {
		return nil, err
	}
	if p.account, err = page("account.html"); err != nil {
		return nil, err
	}
	// The only inline code is the layout's <style> and the account page's
	// copy-button <script> (every page works without it): allow exactly
	// them by hash.
	css, err := inlineHash(layoutSrc, "style")
	if err != nil {
		return nil, err
	}
	accountSrc, err := templateFS.ReadFile("templates/account.html")
	if err != nil {
		return nil, fmt.Errorf("oauthsrv: templates: %w", err)
	}
	js, err := inlineHash(accountSrc, "script")
	if err != nil {
		return nil, err
	}
	p.csp = "default-src 'none'; style-src " + css + "; script-src " + js +
		"; img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'"
	return p, nil
}

// inlineHash is the CSP source ('sha256-…') of the one <tag> block in src.
func inlineHash(src []byte, tag string) (string, error) {
	_, body, ok := bytes.Cut(src, []byte("<"+tag+">"))
	if ok {
		body, _, ok = bytes.Cut(body, []byte("</"+tag+">"))
	}
	if !ok {
		return "", fmt.Errorf("oauthsrv: templates: no <%s> block", tag)
	}
	sum := sha256.Sum256(body)
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'", nil
}

// setPageHeaders sets the headers of every HTML page: no framing
// (clickjacking on consent), no caching (forms carry CSRF tokens), no
// referrer (URLs carry request ids).
func (s *Server) setPageHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", s.pages.csp)
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	// same-origin (not no-referrer): browsers then send a real Origin on the
	// pages' own form posts, which /account checks; nothing leaks cross-site.
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Content-Type-Options", "nosniff")
}

func (s *Server) render(w http.ResponseWriter, status int, t *template.Template, data any) {
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		s.log.Error("render page", "err", err)
		buf.Reset()
		buf.WriteString("<!doctype html><title>Error</title><p>The page could not be shown.</p>")
		status = http.StatusServiceUnavailable
	}
	s.setPageHeaders(w)
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// errorPageData fills error.html. Every error page offers a way on: Back,
// when set, is a link back to the application (BackLabel names where it
// goes); else a link to the account page (InAccount: the error happened
// there). Detail is technical text for developers, folded away.
type errorPageData struct {
	Title, Message, BackLabel, Detail string
	Back                              template.URL
	AccountURL                        string
	InAccount                         bool
}

// ErrorPage renders an HTML error page (for login providers too).
func (s *Server) ErrorPage(w http.ResponseWriter, status int, title, message string) {
	s.render(w, status, s.pages.errorPage, errorPageData{Title: title, Message: message, AccountURL: s.pathURL("/account")})
}

// accountError is an error page of the account forms: its link goes back
// to the account page.
func (s *Server) accountError(w http.ResponseWriter, status int, title, message string) {
	s.render(w, status, s.pages.errorPage, errorPageData{Title: title, Message: message, AccountURL: s.pathURL("/account"), InAccount: true})
}

func (s *Server) pageUnavailable(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "5")
	s.ErrorPage(w, http.StatusServiceUnavailable, "Temporarily unavailable", "The service is temporarily unavailable. Please wait a moment and reload this page.")
}

func (s *Server) pageMethodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	s.ErrorPage(w, http.StatusMethodNotAllowed, "This page cannot be opened this way", "This address only answers the gateway's own forms and links (method not allowed).")
}

func (s *Server) pageRateLimited(w http.ResponseWriter, endpoint string, retry time.Duration) {
	metricsRateLimited(endpoint)
	w.Header().Set("Retry-After", retryAfter(retry))
	s.ErrorPage(w, http.StatusTooManyRequests, "Too many attempts", "Too many requests from your network. Please wait a little and try again.")
}
