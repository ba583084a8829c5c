/*
 * flow.h — the table of a session's phases (flow.c), which the process
 * hands to the phase engine (session/phase.h) before any worker starts.
 */
#ifndef PGNEAR_PROXY_FLOW_H
#define PGNEAR_PROXY_FLOW_H

#include "proxy/session/phase.h"

extern const struct session_flow login_flow;

#endif
