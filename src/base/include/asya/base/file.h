// Files written so that readers see the old content or the new, never a part.
#pragma once

#include <string>
#include <string_view>

#include "asya/base/result.h"

namespace asya {

// Writes `content` to a temporary file beside `path` (same directory, name `<path>.tmp.<pid>.<n>`)
// and renames it over `path`. On any failure the temporary file is removed, `path` keeps its old
// content (or stays absent) and the error (kUnavailable) names the file and the reason. Not
// fsync'ed: survives a crash of the process, not of the machine. Thread-safe.
Status WriteFileAtomic(const std::string& path, std::string_view content, int mode = 0644);

}  // namespace asya
