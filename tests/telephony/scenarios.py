"""Event sequences of real calls, written from the Asterisk AMI and FreeSWITCH event references.

Each Scenario is what the PBX sends, phase by phase, and the CallEvents an adapter must report for it:

    direct          a direct dial to 1001, answered, then the caller hangs up
    ringall         a ring-all queue (Asterisk: app_queue strategy ringall; FreeSWITCH: bridge user/1001,user/1002):
                    both ring, 1001 answers, 1002 stops, the caller hangs up later
    abandoned       the caller hangs up while both agents ring
    noanswer        1001 rings out (queue timeout / leg_timeout), the call moves on to 1002, who answers
    localmember     (Asterisk) a queue member that is a Local/ channel, which dials the agent's device
    transfer        1001 answers, then blind-transfers the caller to 1002, who answers
    drop            the ring-all call with the manager connection broken while both agents ring: at
                    reconnect the PBX lists the channels (`channels`), then the call goes on
    drop_answered   as drop, but 1001 answered and 1002 stopped while the connection was down
    drop_ended      as drop, but the caller hung up while the connection was down

Phases: `phases[0]` rings, the next answers (or ends), the last ends; a drop scenario breaks the connection
after `phases[0]`. AMI repeats events: some are sent twice on purpose. Asterisk agents are devices
(`PJSIP/1001`), FreeSWITCH agents the dialled users (`1001`).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from dataclasses import dataclass, field, replace

from screenpop.models import CallEvent, EventKind
from telephony.base import CtiAdapter

CALLER = "+14155550100"  # the demo's known customer
DID = "18005550100"


@dataclass
class Scenario:
    name: str
    call_id: str
    phases: list[list[dict[str, str]]]
    expected: list[tuple[str, str | None]]  # (event, agent)
    channels: list[dict[str, str]] = field(default_factory=list)  # listed at reconnect (drop scenarios)
    drop: bool = False  # the connection breaks after phases[0]
    before_drop: int = 3  # how many of `expected` come before the drop

    @property
    def events(self) -> list[dict[str, str]]:
        return [e for phase in self.phases for e in phase]

    def expected_events(self) -> list[CallEvent]:
        return [CallEvent(call_id=self.call_id, event=EventKind(kind), caller=CALLER, called=DID,
                          agents=[agent] if agent else []) for kind, agent in self.expected]


# --- Asterisk ----------------------------------------------------------------------------------------------
AMI_STATE = {0: "Down", 4: "Ring", 5: "Ringing", 6: "Up"}


@dataclass(frozen=True)
class Chan:
    """An Asterisk channel snapshot, as AMI events print it (prefixed `Dest` for the dialled side)."""

    name: str
    uid: str
    lid: str
    num: str
    cid_name: str = ""
    context: str = "from-internal"
    exten: str = "s"
    state: int = 0
    connected: str = ""

    def at(self, state: int) -> Chan:
        return replace(self, state=state)

    def fields(self, prefix: str = "") -> dict[str, str]:
        return {f"{prefix}Channel": self.name, f"{prefix}ChannelState": str(self.state),
                f"{prefix}ChannelStateDesc": AMI_STATE[self.state], f"{prefix}CallerIDNum": self.num,
                f"{prefix}CallerIDName": self.cid_name or "<unknown>",
                f"{prefix}ConnectedLineNum": self.connected or "<unknown>",
                f"{prefix}ConnectedLineName": "<unknown>", f"{prefix}Language": "en", f"{prefix}AccountCode": "",
                f"{prefix}Context": self.context, f"{prefix}Exten": self.exten, f"{prefix}Priority": "1",
                f"{prefix}Uniqueid": self.uid, f"{prefix}Linkedid": self.lid}


def ami(event: str, chan: Chan, dest: Chan | None = None, privilege: str = "call,all",
        extra: dict[str, str] | None = None) -> dict[str, str]:
    out = {"Event": event, "Privilege": privilege, **chan.fields()}
    if dest is not None:
        out.update(dest.fields("Dest"))
    return {**out, **(extra or {})}


def bridge_enter(chan: Chan, bridge: str, count: int, swap: str = "") -> dict[str, str]:
    return {"Event": "BridgeEnter", "Privilege": "call,all", "BridgeUniqueid": bridge, "BridgeType": "basic",
            "BridgeTechnology": "simple_bridge", "BridgeCreator": "<unknown>", "BridgeName": "<unknown>",
            "BridgeNumChannels": str(count), "BridgeVideoSourceMode": "none", **chan.fields(),
            **({"SwapUniqueid": swap} if swap else {})}


def hangup(chan: Chan, cause: str = "16", text: str = "Normal Clearing") -> dict[str, str]:
    return ami("Hangup", chan, extra={"Cause": cause, "Cause-txt": text})


def listed(chan: Chan, app: str, data: str = "", bridge: str = "") -> dict[str, str]:
    """One CoreShowChannel entry (without Event and ActionID, which the server adds)."""
    fields = chan.fields()
    return {**fields, "BridgeId": bridge, "Application": app, "ApplicationData": data, "Duration": "00:00:09"}


def _ami_calls(base: int) -> tuple[Chan, Chan, Chan]:
    lid = f"{base}.1"
    caller = Chan("PJSIP/trunk-00000001", lid, lid, CALLER, "ACME CORP", "from-trunk", DID, 4)
    alice = Chan("PJSIP/1001-00000002", f"{base}.2", lid, "1001", "Alice Martin", exten="1001", connected=CALLER)
    bob = Chan("PJSIP/1002-00000003", f"{base}.3", lid, "1002", "Bob Chen", exten="1002", connected=CALLER)
    return caller, alice, bob


def _queue(event: str, caller: Chan, agent: Chan, name: str, **extra: str) -> dict[str, str]:
    return ami(event, caller, agent, "agent,all", {"Queue": "support", "MemberName": name,
                                                   "Interface": agent.name.rsplit("-", 1)[0], **extra})


def _ringall_ami(base: int) -> tuple[Chan, Chan, Chan, list[list[dict[str, str]]]]:
    c, a, b = _ami_calls(base)
    up = c.at(6)
    ring = [ami("Newchannel", c), ami("Newstate", up),
            ami("QueueCallerJoin", up, None, "agent,all", {"Queue": "support", "Position": "1", "Count": "1"}),
            ami("Newchannel", a), ami("Newchannel", b),
            _queue("AgentCalled", up, a, "Alice Martin"), ami("DialBegin", up, a, extra={"DialString": "1001"}),
            _queue("AgentCalled", up, b, "Bob Chen"), ami("DialBegin", up, b, extra={"DialString": "1002"}),
            ami("Newstate", a.at(5)), ami("Newstate", b.at(5)), ami("Newstate", b.at(5))]
    answer = [ami("Newstate", a.at(6)), ami("DialEnd", up, b.at(5), extra={"DialStatus": "CANCEL"}),
              hangup(b.at(5), "26", "Answered elsewhere"), ami("DialEnd", up, a.at(6), extra={"DialStatus": "ANSWER"}),
              ami("QueueCallerLeave", up, None, "agent,all", {"Queue": "support", "Position": "1", "Count": "0"}),
              _queue("AgentConnect", up, a.at(6), "Alice Martin", RingTime="4", HoldTime="5"),
              bridge_enter(up, "b-1", 1), bridge_enter(a.at(6), "b-1", 2), bridge_enter(a.at(6), "b-1", 2)]
    end = [hangup(up), _queue("AgentComplete", up, a.at(6), "Alice Martin", TalkTime="30", Reason="caller"),
           hangup(a.at(6))]
    return c, a, b, [ring, answer, end]


def ami_scenarios() -> dict[str, Scenario]:
    """Every Asterisk scenario, each with its own Linkedid."""
    out: dict[str, Scenario] = {}
    # a direct dial: Dial(PJSIP/1001) from the trunk's context
    c, a, _ = _ami_calls(1700000100)
    out["direct"] = Scenario("direct", c.uid, [
        [ami("Newchannel", c), ami("Newchannel", a), ami("DialBegin", c, a, extra={"DialString": "1001"}),
         ami("Newstate", a.at(5)), ami("DialState", c, a.at(5), extra={"DialStatus": "RINGING"})],
        [ami("Newstate", a.at(6)), ami("Newstate", a.at(6)), ami("DialEnd", c, a.at(6), extra={"DialStatus": "ANSWER"}),
         ami("Newstate", c.at(6)), bridge_enter(c.at(6), "b-2", 1), bridge_enter(a.at(6), "b-2", 2)],
        [hangup(c.at(6)), hangup(a.at(6)), hangup(c.at(6))],
    ], [("offered", None), ("ringing", "PJSIP/1001"), ("answered", "PJSIP/1001"), ("ended", None)])

    c, a, b, phases = _ringall_ami(1700000200)
    ringall = [("offered", None), ("ringing", "PJSIP/1001"), ("ringing", "PJSIP/1002"),
               ("answered", "PJSIP/1001"), ("withdrawn", "PJSIP/1002"), ("ended", None)]
    out["ringall"] = Scenario("ringall", c.uid, phases, ringall)

    c, a, b, phases = _ringall_ami(1700000300)
    up = c.at(6)
    out["abandoned"] = Scenario("abandoned", c.uid, [phases[0], [
        ami("DialEnd", up, a.at(5), extra={"DialStatus": "CANCEL"}),
        ami("DialEnd", up, b.at(5), extra={"DialStatus": "CANCEL"}),
        hangup(a.at(5)), hangup(b.at(5)),
        ami("QueueCallerAbandon", up, None, "agent,all", {"Queue": "support", "Position": "1",
                                                          "OriginalPosition": "1", "HoldTime": "8"}),
        ami("QueueCallerLeave", up, None, "agent,all", {"Queue": "support", "Position": "1", "Count": "0"}),
        hangup(up)]],
        [("offered", None), ("ringing", "PJSIP/1001"), ("ringing", "PJSIP/1002"), ("withdrawn", "PJSIP/1001"),
         ("withdrawn", "PJSIP/1002"), ("ended", None)])

    # strategy linear, timeout 15: 1001 rings out, then 1002 rings and answers
    c, a, b = _ami_calls(1700000400)
    up = c.at(6)
    out["noanswer"] = Scenario("noanswer", c.uid, [
        [ami("Newchannel", c), ami("Newstate", up),
         ami("QueueCallerJoin", up, None, "agent,all", {"Queue": "support", "Position": "1", "Count": "1"}),
         ami("Newchannel", a), _queue("AgentCalled", up, a, "Alice Martin"),
         ami("DialBegin", up, a, extra={"DialString": "1001"}), ami("Newstate", a.at(5)),
         _queue("AgentRingNoAnswer", up, a.at(5), "Alice Martin", RingTime="15"),
         ami("DialEnd", up, a.at(5), extra={"DialStatus": "NOANSWER"}), hangup(a.at(5), "19", "No answer"),
         ami("Newchannel", b), _queue("AgentCalled", up, b, "Bob Chen"),
         ami("DialBegin", up, b, extra={"DialString": "1002"}), ami("Newstate", b.at(5))],
        [ami("Newstate", b.at(6)), ami("DialEnd", up, b.at(6), extra={"DialStatus": "ANSWER"}),
         _queue("AgentConnect", up, b.at(6), "Bob Chen", RingTime="3", HoldTime="20"),
         bridge_enter(up, "b-4", 1), bridge_enter(b.at(6), "b-4", 2)],
        [hangup(up), hangup(b.at(6))],
    ], [("offered", None), ("ringing", "PJSIP/1001"), ("withdrawn", "PJSIP/1001"), ("ringing", "PJSIP/1002"),
        ("answered", "PJSIP/1002"), ("ended", None)])

    # 1001 answers, then blind-transfers to 1002: a Local channel pair takes 1001's place and dials 1002
    c, a, b = _ami_calls(1700000500)
    up, a_up = c.at(6), a.at(6)
    lid = c.lid
    l1 = Chan("Local/1002@from-internal-00000004;1", f"{1700000500}.4", lid, CALLER, exten="1002", state=6)
    l2 = Chan("Local/1002@from-internal-00000004;2", f"{1700000500}.5", lid, CALLER, exten="1002", state=4)
    b = replace(b, uid=f"{1700000500}.6", name="PJSIP/1002-00000006")
    transfer = {"Result": "Success", "IsExternal": "No", "Context": "from-internal", "Extension": "1002",
                "BridgeUniqueid": "b-5", "BridgeType": "basic", "BridgeTechnology": "simple_bridge",
                **{f"Transferer{k}": v for k, v in a_up.fields().items()},
                **{f"Transferee{k}": v for k, v in up.fields().items()}}
    out["transfer"] = Scenario("transfer", c.uid, [
        [ami("Newchannel", c), ami("Newchannel", a), ami("DialBegin", c, a, extra={"DialString": "1001"}),
         ami("Newstate", a.at(5))],
        [ami("Newstate", a_up), ami("DialEnd", c, a_up, extra={"DialStatus": "ANSWER"}),
         bridge_enter(up, "b-5", 1), bridge_enter(a_up, "b-5", 2),
         {"Event": "BlindTransfer", "Privilege": "call,all", **transfer},
         ami("Newchannel", l1), ami("Newchannel", l2), bridge_enter(l1, "b-5", 2, swap=a.uid),
         ami("BridgeLeave", a_up), hangup(a_up), ami("Newchannel", b),
         ami("DialBegin", l2, b, extra={"DialString": "1002"}), ami("Newstate", b.at(5)),
         ami("Newstate", b.at(6)), ami("DialEnd", l2, b.at(6), extra={"DialStatus": "ANSWER"}),
         ami("Newstate", l2.at(6)), bridge_enter(l2.at(6), "b-6", 1), bridge_enter(b.at(6), "b-6", 2)],
        [hangup(up), hangup(l1), hangup(l2.at(6)), hangup(b.at(6))],
    ], [("offered", None), ("ringing", "PJSIP/1001"), ("answered", "PJSIP/1001"), ("ringing", "PJSIP/1002"),
        ("answered", "PJSIP/1002"), ("ended", None)])

    # a FreePBX-style queue member Local/1001@from-queue/n: the Local channel dials the agent's device
    c, a, _ = _ami_calls(1700000550)
    up, lid = c.at(6), c.lid
    l1 = Chan("Local/1001@from-queue-00000008;1", f"{1700000550}.4", lid, CALLER, exten="1001")
    l2 = Chan("Local/1001@from-queue-00000008;2", f"{1700000550}.5", lid, CALLER, context="from-queue", exten="1001",
              state=4)
    member = {"Queue": "support", "MemberName": "Alice Martin", "Interface": "Local/1001@from-queue/n"}
    out["localmember"] = Scenario("localmember", c.uid, [
        [ami("Newchannel", c), ami("Newstate", up),
         ami("QueueCallerJoin", up, None, "agent,all", {"Queue": "support", "Position": "1", "Count": "1"}),
         ami("Newchannel", l1), ami("Newchannel", l2), ami("AgentCalled", up, l1, "agent,all", member),
         ami("DialBegin", up, l1, extra={"DialString": "1001@from-queue/n"}), ami("Newchannel", a),
         ami("DialBegin", l2, a, extra={"DialString": "1001"}), ami("Newstate", a.at(5)), ami("Newstate", l1.at(5))],
        [ami("Newstate", a.at(6)), ami("DialEnd", l2, a.at(6), extra={"DialStatus": "ANSWER"}),
         ami("Newstate", l2.at(6)), ami("Newstate", l1.at(6)),
         ami("DialEnd", up, l1.at(6), extra={"DialStatus": "ANSWER"}),
         ami("AgentConnect", up, l1.at(6), "agent,all", {**member, "RingTime": "3", "HoldTime": "4"}),
         bridge_enter(up, "b-8", 1), bridge_enter(l1.at(6), "b-8", 2), bridge_enter(l2.at(6), "b-9", 1),
         bridge_enter(a.at(6), "b-9", 2)],
        [hangup(up), hangup(l1.at(6)), hangup(l2.at(6)), hangup(a.at(6))],
    ], [("offered", None), ("ringing", "PJSIP/1001"), ("answered", "PJSIP/1001"), ("ended", None)])

    c, a, b, phases = _ringall_ami(1700000600)
    out["drop"] = Scenario("drop", c.uid, [phases[0], phases[1] + phases[2]], ringall, drop=True, channels=[
        listed(c.at(6), "Queue", "support"), listed(a.at(5), "AppQueue", "(Outgoing Line)"),
        listed(b.at(5), "AppQueue", "(Outgoing Line)")])
    c, a, b, phases = _ringall_ami(1700000700)
    out["drop_answered"] = Scenario("drop_answered", c.uid, [phases[0], phases[2]], ringall, drop=True, channels=[
        listed(c.at(6), "Queue", "support", "b-7"), listed(a.at(6), "AppQueue", "(Outgoing Line)", "b-7")])
    c, a, b, phases = _ringall_ami(1700000800)
    out["drop_ended"] = Scenario("drop_ended", c.uid, [phases[0], []],
                                 [("offered", None), ("ringing", "PJSIP/1001"), ("ringing", "PJSIP/1002"),
                                  ("ended", None)], drop=True)
    return out


def ami_sentinel() -> tuple[dict[str, str], CallEvent]:
    """A call offered after a scenario: once it arrives, every event of the scenario has been reported."""
    c = Chan("PJSIP/trunk-00000099", "1799999999.1", "1799999999.1", "+14155550199", exten=DID, state=4)
    return ami("Newchannel", c), CallEvent(call_id=c.uid, event=EventKind.OFFERED, caller=c.num, called=DID)


# --- FreeSWITCH --------------------------------------------------------------------------------------------
CORE_UUID = "6b1e4c3a-2f7d-4c55-9d0e-3c1f8a2b7e10"
_sequence = itertools.count(4100)
_FILES = {"CHANNEL_CREATE": ("switch_core_state_machine.c", "switch_core_session_run", "626"),
          "CHANNEL_CALLSTATE": ("switch_channel.c", "switch_channel_perform_set_callstate", "313"),
          "CHANNEL_PROGRESS": ("switch_channel.c", "switch_channel_perform_mark_ring_ready_value", "3753"),
          "CHANNEL_ANSWER": ("switch_channel.c", "switch_channel_perform_mark_answered", "3996"),
          "CHANNEL_BRIDGE": ("switch_ivr_bridge.c", "audio_bridge_on_exchange_media", "760"),
          "CHANNEL_HANGUP_COMPLETE": ("switch_core_state_machine.c", "switch_core_session_reporting_state", "948")}
_STATES = {"CS_INIT": "2", "CS_ROUTING": "2", "CS_CONSUME_MEDIA": "7", "CS_EXECUTE": "4", "CS_EXCHANGE_MEDIA": "5",
           "CS_REPORTING": "11", "CS_HANGUP": "10"}


@dataclass(frozen=True)
class Leg:
    """A FreeSWITCH channel: the caller's inbound one, or an outbound leg dialled from it (`origin`)."""

    uuid: str
    direction: str
    name: str
    num: str
    dest: str
    context: str = "default"
    origin: str = ""  # outbound legs: the inbound Unique-ID they were dialled from
    user: str = ""  # outbound legs: the dialled user (variable_dialed_user)
    other: str = ""  # the inbound channel once bridged: Other-Leg-Unique-ID


def fs(event: str, leg: Leg, state: str, call_state: str, answer: str,
       extra: dict[str, str] | None = None) -> dict[str, str]:
    """One channel event with the headers FreeSWITCH puts in it (variables only where it sends them)."""
    where = _FILES[event]
    h = {"Event-Name": event, "Core-UUID": CORE_UUID, "FreeSWITCH-Hostname": "pbx1", "FreeSWITCH-Switchname": "pbx1",
         "FreeSWITCH-IPv4": "10.0.0.5", "FreeSWITCH-IPv6": "::1", "Event-Date-Local": "2024-05-02 09:37:03",
         "Event-Date-GMT": "Thu, 02 May 2024 09:37:03 GMT", "Event-Date-Timestamp": "1714642623894968",
         "Event-Calling-File": where[0], "Event-Calling-Function": where[1], "Event-Calling-Line-Number": where[2],
         "Event-Sequence": str(next(_sequence)), "Channel-State": state, "Channel-Call-State": call_state,
         "Channel-State-Number": _STATES[state], "Channel-Name": leg.name, "Unique-ID": leg.uuid,
         "Call-Direction": leg.direction, "Presence-Call-Direction": leg.direction,
         "Channel-HIT-Dialplan": "true" if leg.direction == "inbound" else "false",
         "Channel-Call-UUID": leg.origin or leg.uuid, "Answer-State": answer, "Caller-Direction": leg.direction,
         "Caller-Logical-Direction": leg.direction, "Caller-Username": leg.num, "Caller-Dialplan": "XML",
         "Caller-Caller-ID-Name": "ACME CORP", "Caller-Caller-ID-Number": leg.num,
         "Caller-Orig-Caller-ID-Name": "ACME CORP", "Caller-Orig-Caller-ID-Number": leg.num,
         "Caller-Network-Addr": "203.0.113.9", "Caller-ANI": leg.num, "Caller-Destination-Number": leg.dest,
         "Caller-Unique-ID": leg.uuid, "Caller-Source": "mod_sofia", "Caller-Context": leg.context,
         "Caller-Channel-Name": leg.name, "Caller-Profile-Index": "1"}
    if leg.origin:
        h.update({"Other-Type": "originator", "Other-Leg-Direction": "inbound", "Other-Leg-Caller-ID-Number": leg.num,
                  "Other-Leg-Destination-Number": DID, "Other-Leg-Unique-ID": leg.origin})
    elif leg.other:
        h.update({"Other-Type": "originatee", "Other-Leg-Direction": "outbound", "Other-Leg-Unique-ID": leg.other})
    if event != "CHANNEL_CALLSTATE":  # without verbose-channel-events, CALLSTATE carries no variables
        h.update({"variable_direction": leg.direction, "variable_uuid": leg.uuid,
                  "variable_sip_from_user": leg.num, "variable_sip_to_user": leg.dest})
        if leg.origin:
            h.update({"variable_originating_leg_uuid": leg.origin, "variable_call_uuid": leg.origin,
                      "variable_dialed_user": leg.user, "variable_dialed_domain": "pbx.example.com"})
    return {**h, **(extra or {})}


def create(leg: Leg) -> dict[str, str]:
    return fs("CHANNEL_CREATE", leg, "CS_INIT", "DOWN", "ringing")


def callstate(leg: Leg, new: str, old: str, state: str = "CS_EXECUTE") -> dict[str, str]:
    answer = {"ACTIVE": "answered", "HANGUP": "hangup"}.get(new, "ringing" if leg.direction == "inbound" else "early")
    return fs("CHANNEL_CALLSTATE", leg, state, new, answer, {"Original-Channel-Call-State": old})


def progress(leg: Leg) -> dict[str, str]:
    return fs("CHANNEL_PROGRESS", leg, "CS_CONSUME_MEDIA", "RINGING", "early")


def answer(leg: Leg) -> dict[str, str]:
    return fs("CHANNEL_ANSWER", leg, "CS_EXECUTE" if leg.direction == "inbound" else "CS_CONSUME_MEDIA",
              "ACTIVE", "answered")


def bridge(a: Leg, b: Leg) -> dict[str, str]:
    return fs("CHANNEL_BRIDGE", replace(a, other=b.uuid), "CS_EXECUTE", "ACTIVE", "answered",
              {"Bridge-A-Unique-ID": a.uuid, "Bridge-B-Unique-ID": b.uuid})


def hangup_complete(leg: Leg, cause: str, was: str = "ACTIVE") -> dict[str, str]:
    return fs("CHANNEL_HANGUP_COMPLETE", leg, "CS_REPORTING", "HANGUP", "hangup",
              {"Hangup-Cause": cause, "variable_hangup_cause": cause, "variable_last_bridge_hangup_cause": cause,
               "Original-Channel-Call-State": was})


def ended(leg: Leg, cause: str, was: str = "ACTIVE") -> list[dict[str, str]]:
    return [callstate(leg, "HANGUP", was, "CS_HANGUP"), hangup_complete(leg, cause, was)]


def row(leg: Leg, callstate_: str) -> dict[str, str]:
    """One row of `show channels as json`."""
    inbound = leg.direction == "inbound"
    return {"uuid": leg.uuid, "direction": leg.direction, "created": "2024-05-02 09:37:03",
            "created_epoch": "1714642623", "name": leg.name, "state": "CS_EXECUTE" if inbound else "CS_CONSUME_MEDIA",
            "cid_name": "ACME CORP", "cid_num": leg.num, "ip_addr": "203.0.113.9", "dest": leg.dest,
            "application": "bridge" if inbound else "", "application_data": "user/1001,user/1002" if inbound else "",
            "dialplan": "XML", "context": leg.context, "read_codec": "PCMU", "read_rate": "8000",
            "callstate": callstate_, "callee_name": "", "callee_num": "", "callee_direction": "",
            "call_uuid": "" if inbound else leg.origin, "hostname": "pbx1", "presence_id": "",
            "initial_cid_num": leg.num, "initial_dest": leg.dest}


def _fs_calls(n: int) -> tuple[Leg, Leg, Leg, Leg]:
    a = f"a{n:07d}-5b1c-4d2e-8f3a-0c1d2e3f4a5b"
    caller = Leg(a, "inbound", f"sofia/external/{CALLER}@203.0.113.9", CALLER, DID, "public")

    def out(i: int, user: str) -> Leg:
        return Leg(f"b{n:07d}-{i}b1c-4d2e-8f3a-0c1d2e3f4a5b", "outbound", f"sofia/internal/{user}@10.0.0.2{i}:5060",
                   CALLER, user, origin=a, user=user)
    return caller, out(1, "1001"), out(2, "1002"), out(3, "1002")


def _fs_ring(c: Leg, *legs: Leg) -> list[dict[str, str]]:
    out = [create(c), callstate(c, "RINGING", "DOWN", "CS_ROUTING")]
    out += [create(leg) for leg in legs]
    for leg in legs:
        out += [progress(leg), callstate(leg, "RINGING", "DOWN", "CS_CONSUME_MEDIA")]
    return out


def _fs_answer(c: Leg, leg: Leg) -> list[dict[str, str]]:
    return [answer(leg), callstate(leg, "ACTIVE", "RINGING", "CS_CONSUME_MEDIA"), answer(c),
            callstate(c, "ACTIVE", "RINGING"), bridge(c, leg)]


def esl_scenarios() -> dict[str, Scenario]:
    """Every FreeSWITCH scenario, each with its own inbound Unique-ID."""
    out: dict[str, Scenario] = {}
    c, a, _, _ = _fs_calls(1)
    out["direct"] = Scenario("direct", c.uuid, [_fs_ring(c, a), _fs_answer(c, a),
                                                 ended(c, "NORMAL_CLEARING") + ended(a, "NORMAL_CLEARING")],
                             [("offered", None), ("ringing", "1001"), ("answered", "1001"), ("ended", None)])

    def ringall(n: int) -> tuple[Leg, Leg, Leg, list[list[dict[str, str]]]]:
        c, a, b, _ = _fs_calls(n)
        return c, a, b, [_fs_ring(c, a, b),
                         [answer(a), callstate(a, "ACTIVE", "RINGING", "CS_CONSUME_MEDIA"),
                          *ended(b, "LOSE_RACE", "RINGING"), answer(c), callstate(c, "ACTIVE", "RINGING"),
                          bridge(c, a)],
                         ended(c, "NORMAL_CLEARING") + ended(a, "NORMAL_CLEARING")]

    expected = [("offered", None), ("ringing", "1001"), ("ringing", "1002"), ("answered", "1001"),
                ("withdrawn", "1002"), ("ended", None)]
    c, a, b, phases = ringall(2)
    out["ringall"] = Scenario("ringall", c.uuid, phases, expected)

    c, a, b, phases = ringall(3)
    out["abandoned"] = Scenario("abandoned", c.uuid, [
        phases[0], ended(a, "ORIGINATOR_CANCEL", "RINGING") + ended(b, "ORIGINATOR_CANCEL", "RINGING")
        + ended(c, "ORIGINATOR_CANCEL", "RINGING")],
        [("offered", None), ("ringing", "1001"), ("ringing", "1002"), ("withdrawn", "1001"),
         ("withdrawn", "1002"), ("ended", None)])

    # bridge user/1001|user/1002 with leg_timeout=15: 1001 rings out, then 1002 rings and answers
    c, a, b, _ = _fs_calls(4)
    out["noanswer"] = Scenario("noanswer", c.uuid, [
        _fs_ring(c, a) + ended(a, "NO_ANSWER", "RINGING") + [create(b), progress(b),
                                                             callstate(b, "RINGING", "DOWN", "CS_CONSUME_MEDIA")],
        _fs_answer(c, b), ended(c, "NORMAL_CLEARING") + ended(b, "NORMAL_CLEARING")],
        [("offered", None), ("ringing", "1001"), ("withdrawn", "1001"), ("ringing", "1002"),
         ("answered", "1002"), ("ended", None)])

    # 1001 answers, then blind-transfers (SIP REFER): the caller's channel bridges to a new leg to 1002
    c, a, _, b = _fs_calls(5)
    out["transfer"] = Scenario("transfer", c.uuid, [
        _fs_ring(c, a),
        _fs_answer(c, a) + ended(a, "NORMAL_CLEARING") + [create(b), progress(b),
                                                           callstate(b, "RINGING", "DOWN", "CS_CONSUME_MEDIA"),
                                                           answer(b), callstate(b, "ACTIVE", "RINGING"), bridge(c, b)],
        ended(c, "NORMAL_CLEARING") + ended(b, "NORMAL_CLEARING")],
        [("offered", None), ("ringing", "1001"), ("answered", "1001"), ("ringing", "1002"),
         ("answered", "1002"), ("ended", None)])

    c, a, b, phases = ringall(6)
    out["drop"] = Scenario("drop", c.uuid, [phases[0], phases[1] + phases[2]], expected, drop=True,
                           channels=[row(c, "RINGING"), row(a, "RINGING"), row(b, "RINGING")])
    c, a, b, phases = ringall(7)
    out["drop_answered"] = Scenario("drop_answered", c.uuid, [phases[0], phases[2]], expected, drop=True,
                                    channels=[row(c, "ACTIVE"), row(a, "ACTIVE")])
    c, a, b, phases = ringall(8)
    out["drop_ended"] = Scenario("drop_ended", c.uuid, [phases[0], []],
                                 [("offered", None), ("ringing", "1001"), ("ringing", "1002"), ("ended", None)],
                                 drop=True)
    return out


def esl_sentinel() -> tuple[dict[str, str], CallEvent]:
    """A call offered after a scenario: once it arrives, every event of the scenario has been reported."""
    leg = Leg("f9999999-5b1c-4d2e-8f3a-0c1d2e3f4a5b", "inbound", "sofia/external/+14155550199@203.0.113.9",
              "+14155550199", DID, "public")
    return create(leg), CallEvent(call_id=leg.uuid, event=EventKind.OFFERED, caller=leg.num, called=DID)


# --- running an adapter ------------------------------------------------------------------------------------
class Feed:
    """An adapter's `events()` running in a task, its CallEvents queued as they come."""

    def __init__(self, adapter: CtiAdapter) -> None:
        self.adapter = adapter
        self.queue: asyncio.Queue[CallEvent] = asyncio.Queue()
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        async for event in self.adapter.events():
            await self.queue.put(event)

    async def take(self, n: int, within: float = 10) -> list[CallEvent]:
        """The next `n` events (failing after `within` seconds)."""
        async with asyncio.timeout(within):
            return [await self.queue.get() for _ in range(n)]

    async def until(self, last: CallEvent, within: float = 10) -> list[CallEvent]:
        """Every event up to and including `last` (failing after `within` seconds)."""
        out: list[CallEvent] = []
        async with asyncio.timeout(within):
            while not out or out[-1] != last:
                out.append(await self.queue.get())
        return out

    async def close(self) -> None:
        """Close the adapter; its `events()` must end (within 5 s) without an error."""
        await self.adapter.close()
        async with asyncio.timeout(5):
            await self.task


class LogWatch(logging.Handler):
    """Collects the messages of one logger, and lets a test wait for one."""

    def __init__(self, logger: str) -> None:
        super().__init__(logging.DEBUG)
        self.logger = logging.getLogger(logger)
        self.messages: list[str] = []
        self._changed = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
        self._changed.set()

    def __enter__(self) -> LogWatch:
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self)

    def count(self, text: str) -> int:
        return sum(text in m for m in self.messages)

    async def until(self, text: str, n: int = 1, within: float = 10) -> None:
        """Return once `n` messages contain `text` (failing after `within` seconds)."""
        async with asyncio.timeout(within):
            while True:
                self._changed.clear()
                if self.count(text) >= n:
                    return
                await self._changed.wait()
