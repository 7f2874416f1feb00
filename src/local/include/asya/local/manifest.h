// Forwarding header: the AsyncActor model moved to the `actor` library (asya/actor/manifest.h).
// These names keep src/local and src/bin/asya compiling unchanged while they are refactored;
// new code should include asya/actor/manifest.h and say actor::.
#pragma once

#include "asya/actor/manifest.h"

namespace asya::local {

using actor::ActorSpec;
using actor::EffectiveSidecarEnv;
using actor::EnvVar;
using actor::IsValidActorName;
using actor::kLocalCommandAnnotation;
using actor::LoadManifests;
using actor::LoadResult;
using actor::ParseManifests;
using actor::ScalingSpec;
using actor::SidecarSpecEnv;
using actor::SplitCommand;

}  // namespace asya::local
