// The tools configuration (reference-controlplane §7.3): YAML file or directory → tools.
//
//   defaults: {progress: bool, timeout: int seconds}          # optional
//   routes:   {<template>: [actorA, actorB]}                   # optional named routes
//   tools:                                                     # required, non-empty
//   - name: str                   # unique, non-empty
//     description: str
//     parameters:                 # or `input_schema:` (a JSON Schema object, kept verbatim)
//       <param>: {type: string|number|integer|boolean|object|array, description, required: bool,
//                 default: any, options: [..] (alias enum), properties: {<param>: ...},
//                 items: <param>, and the JSON Schema keywords title, format, pattern, minimum,
//                 maximum, exclusiveMinimum, exclusiveMaximum, minLength, maxLength, minItems,
//                 maxItems, examples}
//     route: [actor, ...] | <template>
//     progress: bool
//     timeout: int >= 0            # seconds; 0 = no deadline
//     metadata: {k: v}             # strings, echoed in the tool response
//     task_support: forbidden | optional | required   # MCP Tasks (default optional)
// Decoding is strict: an unknown key anywhere is an error naming the file, line and key. A
// directory loads every *.yaml / *.yml in it (sorted, not recursive): tools concatenated and
// routes unioned (a duplicate across files is an error), the last file's `defaults` wins.
// Effective options: built-ins (progress false, timeout 300) < defaults < the tool's own.
//
// The advertised `inputSchema` is {"type":"object","properties":..,"required":[..],
// "additionalProperties":false}: `default`, `enum` (from options), nested `properties` and
// `items` are advertised; integer and number stay distinct.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "asya/base/result.h"
#include "asya/gateway/service.h"

namespace asya::gateway {

// Loads a file or a directory (see above). kInvalidArgument with the file name and line.
Result<std::vector<Tool>> LoadToolsConfig(const std::string& path);
// Parses one YAML document (`source` names it in errors) and validates it as a whole config.
Result<std::vector<Tool>> ParseToolsConfig(std::string_view yaml, std::string_view source);

// Checks `arguments_json` (must be a JSON object; empty text = {}) against `schema_json` (a
// tool's inputSchema) and returns the arguments with top-level defaults filled in.
// kInvalidArgument names the parameter: "missing required parameter: p", "unknown parameter: p",
// "parameter 'p.q': expected integer, got string", "parameter 'p': must be one of [..]".
// Supported keywords: type (string or list), enum, const, required, properties,
// additionalProperties (bool or schema), items, minimum, maximum, exclusiveMinimum,
// exclusiveMaximum, minLength, maxLength, minItems, maxItems; others are preserved and ignored.
Result<std::string> CheckArguments(std::string_view schema_json, std::string_view arguments_json);

}  // namespace asya::gateway
