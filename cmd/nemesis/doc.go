// Command nemesis is the one binary of Nemesis.
//
//	nemesis scaler --rules PATH [--rules PATH…] --prometheus-url URL --grpc-address HOST:PORT --http-address HOST:PORT
//	nemesis rules check PATH…
//	nemesis rules eval --rules PATH --rule-set NAME [--metadata 'key: value'] [--prometheus-url URL | --set 'query: 1,2']
//	nemesis rules test [--run REGEX] FILE…
//	nemesis version
//
// The scaler is a KEDA external scaler that evaluates rule sets over PromQL
// results; rules check validates rule files offline; rules test runs unit
// tests of rule sets over given series (package rulestest). Run a subcommand with
// --help for its flags.
package main
