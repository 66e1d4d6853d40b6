// Package deploy holds no server code: it is the home of the deployment files
// beside it (Grafana dashboard, Prometheus alert rules, systemd unit) and of
// the tests that check them in `make test`:
//
//   - the alert rules pass `promtool check rules` and their unit tests
//     (`promtool test rules`, series written by alerts_test.yml);
//   - every dashboard query parses (promtool) and every metric and label the
//     dashboard and the alerts name exists in a live /metrics scrape of a
//     real wspush server in cluster mode;
//   - the binary built the way the Dockerfile builds it is static and runs
//     as the image's nonroot user; the systemd unit passes `systemd-analyze
//     verify`, its hardening scores well, its system call filter allows what
//     the server calls (traced with strace), and its environment file only
//     sets real flags.
//
// See docs/deploy.md ("Packaging and monitoring").
package deploy
