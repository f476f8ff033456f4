// Package command is the scaffolding that the e2e suite's long-running
// commands, llmsim and sampleapp, share: one exit, with the same exit codes,
// and a context that a signal ends.
//
// A command's main is one call, [Main], with its run function. Run gets a
// context that SIGINT or SIGTERM ends, from then on serving its graceful
// shutdown: a second signal does not hurry it, as the shutdown is bounded by
// the command's own grace. The process then exits:
//
//   - 0 when run returns nil, or an error that is [flag.ErrHelp] (-help);
//   - the code of an [*ExitError] in run's error, [ExitUsage] (2) for bad
//     flags, which [Parse] and [Usage] return;
//   - [ExitFailure] (1) for any other error.
//
// On a non-zero exit it prints "name: error" on stderr.
package command
