import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import * as pb from "../gen/raftkv.ts";
import type {
  AppendEntries,
  AppendEntriesResponse,
  Entry,
  ReadIndex,
  ReadIndexResponse,
  RequestVote,
  RequestVoteResponse,
  TimeoutNow,
} from "../raft/types.ts";
import type { DumpLogReply, GetReply, NodeStatus, SetReply, TransferLeaderReply } from "./api.ts";
import * as codec from "./codec.ts";

/** Encodes to bytes and decodes again, so the test covers the wire format, not just the object mapping. */
function wire<T>(fns: pb.MessageFns<T>, msg: T): T {
  return fns.decode(fns.encode(msg).finish());
}

const AWKWARD_STRINGS = [
  "",
  "plain",
  "with spaces  and  double spaces ",
  "line one\nline two\r\nline three\n",
  "tab\there",
  "unicode: héllo wörld — 日本語 — 🚀👩‍💻",
  "quotes \"'` and backslash \\ and NUL \u0000 inside",
];

const ENTRIES: readonly Entry[] = [
  { index: 1, term: 1, command: { op: "noop" } },
  ...AWKWARD_STRINGS.map((s, i): Entry => ({
    index: i + 2,
    term: 3,
    command: { op: "set", key: `k ${s}`, value: s, clientId: s === "" ? "" : `client-${i}`, seq: i * 7 },
  })),
  // Large numbers still exact as JS numbers.
  {
    index: Number.MAX_SAFE_INTEGER,
    term: 2 ** 40,
    command: { op: "set", key: "big", value: "x".repeat(100_000), clientId: "c", seq: 2 ** 52 },
  },
];

Deno.test("every kind of entry survives a trip through the wire, including awkward keys and values", () => {
  for (const entry of ENTRIES) {
    deepStrictEqual(codec.entryFromProto(wire(pb.Entry, codec.entryToProto(entry))), entry);
  }
});

Deno.test("a RequestVote survives a trip through the wire, with and without PreVote", () => {
  const messages: RequestVote[] = [
    {
      type: "RequestVote",
      from: 2,
      to: 5,
      term: 7,
      lastLogIndex: 41,
      lastLogTerm: 6,
      preVote: false,
      revokedLeaseTerm: 0,
    },
    {
      type: "RequestVote",
      from: 3,
      to: 1,
      term: 8,
      lastLogIndex: 0,
      lastLogTerm: 0,
      preVote: true,
      revokedLeaseTerm: 7,
    },
  ];
  for (const msg of messages) {
    const proto = wire(pb.RequestVoteRequest, codec.requestVoteToProto(msg, "cluster-a"));
    strictEqual(proto.clusterId, "cluster-a");
    deepStrictEqual(codec.requestVoteFromProto(proto), msg);
  }
});

Deno.test("a RequestVoteResponse keeps its fractional lease duration across the wire", () => {
  const msg: RequestVoteResponse = {
    type: "RequestVoteResponse",
    from: 5,
    to: 2,
    term: 7,
    preVote: false,
    voteGranted: true,
    leaseRemainingMs: 812.3456789,
    leaseTerm: 6,
  };
  deepStrictEqual(
    codec.requestVoteResponseFromProto(wire(pb.RequestVoteResponse, codec.requestVoteResponseToProto(msg))),
    msg,
  );
});

Deno.test("an AppendEntries with a batch of entries survives a trip through the wire", () => {
  for (const entries of [[], ENTRIES]) {
    const msg: AppendEntries = {
      type: "AppendEntries",
      from: 1,
      to: 4,
      term: 9,
      prevLogIndex: 12,
      prevLogTerm: 8,
      entries,
      leaderCommit: 11,
      leaseDurationMs: 800,
      seq: 123456,
      // Bounded-staleness reads (issue 16): absent (0) on the first, set on the second.
      ...(entries.length > 0 ? { ackedSeq: 123450, leaseCommitIndex: 11 } : {}),
      // Clock sanity: a sender's clock reading, absent (0: a node that predates it) on the first.
      ...(entries.length > 0 ? { senderElapsedMs: 86_400_123.456 } : {}),
    };
    const proto = wire(pb.AppendEntriesRequest, codec.appendEntriesToProto(msg, "c"));
    strictEqual(proto.clusterId, "c");
    deepStrictEqual(codec.appendEntriesFromProto(proto), msg);
  }
});

Deno.test("an AppendEntriesResponse survives a trip through the wire, accepted or rejected", () => {
  const messages: AppendEntriesResponse[] = [
    {
      type: "AppendEntriesResponse",
      from: 4,
      to: 1,
      term: 9,
      success: true,
      matchIndex: 20,
      conflictIndex: 0,
      conflictTerm: 0,
      seq: 99,
    },
    {
      type: "AppendEntriesResponse",
      from: 4,
      to: 1,
      term: 9,
      success: false,
      matchIndex: 0,
      conflictIndex: 5,
      conflictTerm: 3,
      seq: 100,
      senderElapsedMs: 5_000.25,
    },
  ];
  for (const msg of messages) {
    const proto = wire(pb.AppendEntriesResponse, codec.appendEntriesResponseToProto(msg));
    deepStrictEqual(codec.appendEntriesResponseFromProto(proto), msg);
  }
});

Deno.test("a TimeoutNow survives a trip through the wire", () => {
  const msg: TimeoutNow = { type: "TimeoutNow", from: 1, to: 3, term: 12 };
  const proto = wire(pb.TimeoutNowRequest, codec.timeoutNowToProto(msg, "prod"));
  strictEqual(proto.clusterId, "prod");
  deepStrictEqual(codec.timeoutNowFromProto(proto), msg);
});

Deno.test("client requests and replies survive a trip through the wire with awkward keys and values", () => {
  for (const s of AWKWARD_STRINGS) {
    deepStrictEqual(codec.getRequestFromProto(wire(pb.GetRequest, codec.getRequestToProto({ key: s }))), {
      key: s,
    });
    const set = { key: s, value: `${s}!`, clientId: "c1", seq: 17 };
    deepStrictEqual(codec.setRequestFromProto(wire(pb.SetRequest, codec.setRequestToProto(set))), set);
    const get: GetReply = {
      ok: true,
      value: s,
      found: s !== "",
      error: "none",
      errorMessage: "",
      leaderId: 1,
      leaderAddress: "10.0.0.1:7001",
      retryAfterMs: 0,
      nodeId: 1,
      version: 12,
    };
    deepStrictEqual(codec.getReplyFromProto(wire(pb.GetReply, codec.getReplyToProto(get))), get);
  }
});

Deno.test("every error kind survives a trip through the wire", () => {
  const kinds = [
    "none",
    "notLeader",
    "notReady",
    "transferring",
    "invalidArgument",
    "timeout",
    "internal",
  ] as const;
  for (const error of kinds) {
    const reply: SetReply = {
      ok: error === "none",
      error,
      errorMessage: `because ${error}`,
      leaderId: 3,
      leaderAddress: "host-3:7003",
      retryAfterMs: 250.5,
      nodeId: 2,
      index: 0,
    };
    deepStrictEqual(codec.setReplyFromProto(wire(pb.SetReply, codec.setReplyToProto(reply))), reply);
  }
});

Deno.test("an error code unknown to this build reads as an internal error", () => {
  strictEqual(codec.errorKindFromProto(99 as pb.ErrorCode), "internal");
});

Deno.test("a partial answer is completed with defaults", () => {
  deepStrictEqual(codec.getReplyFromProto(wire(pb.GetReply, codec.getReplyToProto({ ok: true }))), {
    ok: true,
    value: "",
    found: false,
    version: 0,
    error: "none",
    errorMessage: "",
    leaderId: 0,
    leaderAddress: "",
    retryAfterMs: 0,
    nodeId: 0,
  });
});

Deno.test("each core refusal maps to a reply and back", () => {
  for (
    const refusal of [
      { kind: "notLeader", leaderId: 0 },
      { kind: "notLeader", leaderId: 4 },
      { kind: "notReady", retryAfterMs: 640 },
      { kind: "transferring", leaderId: 2 },
    ] as const
  ) {
    const answer = codec.refusalToReply(refusal);
    strictEqual(answer.ok, false);
    const reply = codec.getReplyFromProto(wire(pb.GetReply, codec.getReplyToProto(answer)));
    deepStrictEqual(codec.refusalFromReply(reply), refusal);
  }
});

Deno.test("a node status survives a trip through the wire in every role", () => {
  for (const role of ["follower", "candidate", "leader"] as const) {
    const status: NodeStatus = {
      id: 3,
      address: "127.0.0.1:7003",
      role,
      term: 5,
      votedFor: 2,
      leaderId: role === "leader" ? 3 : 2,
      commitIndex: 40,
      lastLogIndex: 42,
      lastLogTerm: 5,
      leaseRemainingMs: 512.25,
      leaseWaitRemainingMs: 0,
      servingReads: role === "leader",
      promiseRemainingMs: 780.5,
      peerRpcCount: 123456789,
      version: "0.1.0 (deno 2.8.3)",
    };
    deepStrictEqual(codec.statusFromProto(wire(pb.StatusReply, codec.statusToProto(status))), status);
  }
});

Deno.test("a node certificate's time left crosses the wire as a duration, and stays absent without TLS", () => {
  const base: NodeStatus = {
    id: 1,
    address: "127.0.0.1:7001",
    role: "follower",
    term: 2,
    votedFor: 0,
    leaderId: 2,
    commitIndex: 4,
    lastLogIndex: 4,
    lastLogTerm: 2,
    leaseRemainingMs: 0,
    leaseWaitRemainingMs: 0,
    servingReads: false,
    promiseRemainingMs: 0,
    peerRpcCount: 1,
    version: "0.1.0",
  };
  for (const ms of [63_071_999_123.5, 1, 0, -86_400_000]) {
    const status = { ...base, certificateExpiresInMs: ms };
    deepStrictEqual(codec.statusFromProto(wire(pb.StatusReply, codec.statusToProto(status))), status);
  }
  const plain = codec.statusFromProto(wire(pb.StatusReply, codec.statusToProto(base)));
  deepStrictEqual(plain, base);
  ok(!("certificateExpiresInMs" in plain), "plain text: no field");
});

Deno.test("transfer-leader and dump-log replies survive a trip through the wire", () => {
  const transfer: TransferLeaderReply = { ok: false, newLeaderId: 0, error: "node 9 is not a member" };
  deepStrictEqual(
    codec.transferLeaderReplyFromProto(
      wire(pb.TransferLeaderReply, codec.transferLeaderReplyToProto(transfer)),
    ),
    transfer,
  );
  const req = { fromIndex: 3, maxEntries: 100 };
  deepStrictEqual(
    codec.dumpLogRequestFromProto(wire(pb.DumpLogRequest, codec.dumpLogRequestToProto(req))),
    req,
  );
  const dump: DumpLogReply = { entries: ENTRIES, commitIndex: 5 };
  deepStrictEqual(codec.dumpLogReplyFromProto(wire(pb.DumpLogReply, codec.dumpLogReplyToProto(dump))), dump);
});

Deno.test("an entry without a command or with an unspecified op is refused as malformed", () => {
  throws(() => codec.entryFromProto({ index: 1, term: 1, command: undefined }), codec.CodecError);
  throws(
    () =>
      codec.entryFromProto({
        index: 1,
        term: 1,
        command: { op: pb.Op.UNSPECIFIED, key: "", value: "", clientId: "", seq: 0, membershipJson: "" },
      }),
    codec.CodecError,
  );
  // The same holds after decoding bytes that simply lack the command field.
  const bytes = pb.Entry.encode({ index: 1, term: 1, command: undefined }).finish();
  throws(() => codec.entryFromProto(pb.Entry.decode(bytes)), codec.CodecError);
});

Deno.test("an unspecified role is refused as malformed", () => {
  throws(() => codec.roleFromProto(pb.Role.UNSPECIFIED), codec.CodecError);
});

Deno.test("ReadIndex requests and answers, and GET read modes, survive a trip through the wire (issue 16)", () => {
  const req: ReadIndex = { type: "ReadIndex", from: 3, to: 1, term: 7, id: 42 };
  const ok: ReadIndexResponse = {
    type: "ReadIndexResponse",
    from: 1,
    to: 3,
    term: 7,
    id: 42,
    readIndex: 99,
    leaderId: 1,
    retryAfterMs: 0,
  };
  const refused: ReadIndexResponse = { ...ok, readIndex: 0, leaderId: 2, retryAfterMs: 15.5 };
  for (const m of [req, ok, refused]) {
    const frame = wire(pb.PeerFrame, codec.messageToPeerFrame(m, "c"));
    const back = codec.messageFromPeerFrame(frame);
    strictEqual(back.clusterId, "c");
    deepStrictEqual(back.msg, m);
  }
  for (
    const g of [
      { key: "k" },
      { key: "k", readMode: "follower" as const },
      { key: "k", readMode: "stale" as const, maxStalenessMs: 2000 },
    ]
  ) {
    deepStrictEqual(codec.getRequestFromProto(wire(pb.GetRequest, codec.getRequestToProto(g))), g);
  }
  const tooStale = codec.refusalToReply({
    kind: "tooStale",
    stalenessMs: 2500,
    maxStalenessMs: 2000,
    leaderId: 1,
  });
  strictEqual(tooStale.error, "tooStale");
  strictEqual(codec.errorKindFromProto(codec.errorKindToProto("tooStale")), "tooStale");
});
