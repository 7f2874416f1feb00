// `asya completion bash`: a bash completion script. Flags are read from the commands' own --help
// at completion time, so the script never falls behind them; actor names come from the state
// directory's logs/ (one <actor>.log per actor the mesh has run).
#include <cstdio>
#include <string_view>

#include "asya/base/exit_codes.h"
#include "bin/asya/commands.h"

namespace asya::cli {
namespace {

constexpr char kBash[] =
    R"BASH(# bash completion for asya; load with: source <(asya completion bash)
_asya_actors() {
  local dir="${ASYA_STATE_DIR:-.asya}" i f
  for ((i = 1; i < COMP_CWORD; i++)); do
    [[ ${COMP_WORDS[i]} == --state-dir ]] && dir=${COMP_WORDS[i + 1]}
  done
  for f in "$dir"/logs/*.log; do
    [[ -e $f ]] || continue
    f=${f##*/}
    f=${f%.log}
    [[ $f == asya ]] || printf '%s\n' "$f"
  done
}

_asya() {
  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
  local cmd=${COMP_WORDS[1]} asya=${COMP_WORDS[0]} words i npos=0
  COMPREPLY=()
  # npos: positional arguments between the command and the word being completed.
  for ((i = 2; i < COMP_CWORD; i++)); do
    case ${COMP_WORDS[i]} in
      --state-dir | --transport | -o | --output | --timeout | --restart-backoff | -n | \
        --namespace | --operator-config | --sqlite-path | --rabbitmq-url | --sqs-endpoint | \
        --region) i=$((i + 1)) ;;
      --wait) [[ $cmd == queue ]] && i=$((i + 1)) ;;
      -*) ;;
      *) npos=$((npos + 1)) ;;
    esac
  done
  if ((COMP_CWORD == 1)); then
    COMPREPLY=($(compgen -W "up down get describe logs send queue list show call status stream check render completion help" -- "$cur"))
    return
  fi
  case $prev in
    --state-dir) COMPREPLY=($(compgen -d -- "$cur")); return ;;
    --transport) COMPREPLY=($(compgen -W "sqlite rabbitmq sqs" -- "$cur")); return ;;
    -o | --output)
      case $cmd in
        get) words="wide json" ;;
        render) words="yaml json" ;;
        *) words="text json" ;;
      esac
      COMPREPLY=($(compgen -W "$words" -- "$cur"))
      return
      ;;
  esac
  if [[ $cur == -* ]]; then
    if [[ $cmd == queue ]] && ((npos > 0)); then
      words=$("$asya" queue "${COMP_WORDS[2]}" --help 2>/dev/null)
    else
      words=$("$asya" "$cmd" --help 2>/dev/null)
    fi
    COMPREPLY=($(compgen -W "$(grep -oE -- '(^|[ ,])--?[a-zA-Z][a-zA-Z-]*' <<<"$words" | tr -d ' ,' | sort -u)" -- "$cur"))
    return
  fi
  case $cmd in
    up | render) COMPREPLY=($(compgen -f -- "$cur")) ;;
    get | describe)
      if ((npos == 0)); then
        [[ $cmd == get ]] && words=actors || words=actor
        COMPREPLY=($(compgen -W "$words" -- "$cur"))
      else
        COMPREPLY=($(compgen -W "$(_asya_actors)" -- "$cur"))
      fi
      ;;
    logs) COMPREPLY=($(compgen -W "$(_asya_actors)" -- "$cur")) ;;
    send)
      if ((npos == 0)); then
        local pre=""
        [[ $cur == *,* ]] && pre=${cur%,*},
        COMPREPLY=($(compgen -P "$pre" -W "$(_asya_actors)" -- "${cur##*,}"))
      else
        COMPREPLY=($(compgen -f -- "$cur"))
      fi
      ;;
    queue)
      ((npos == 0)) && COMPREPLY=($(compgen -W "list depth publish get purge" -- "$cur"))
      ;;
    completion) COMPREPLY=($(compgen -W "bash" -- "$cur")) ;;
  esac
}
complete -o default -F _asya asya
)BASH";

void Help(std::FILE* to) {
  std::fprintf(to,
               "usage: asya completion bash\n"
               "\n"
               "Prints a bash completion script (commands, flags, actor names of the state "
               "directory).\n"
               "\n"
               "%s\n"
               "\n"
               "Examples:\n"
               "  source <(asya completion bash)                 # this shell\n"
               "  asya completion bash > ~/.local/share/bash-completion/completions/asya\n",
               exit_code::kHelpTable);
}

}  // namespace

int RunCompletion(int argc, char** argv) {
  if (argc == 2 && std::string_view(argv[1]) == "bash") {
    std::fputs(kBash, stdout);
    return exit_code::kOk;
  }
  if (argc == 2 && (std::string_view(argv[1]) == "--help" || std::string_view(argv[1]) == "-h")) {
    Help(stdout);
    return exit_code::kOk;
  }
  std::fprintf(stderr, "asya completion: %s\n",
               argc < 2 ? "name a shell (bash)" : "only bash is supported");
  Help(stderr);
  return exit_code::kUsage;
}

}  // namespace asya::cli
