(* Item 3 of issue 13: DSI's invariant (T6) on an abstract model of the scheduler.

   The state of dsi_ref.scheduler.DSIScheduler, less what decides only timing:
     committed   s.committed
     drafts      s.drafts: (token, q) beyond the committed prefix
     inflight    s.draft_inflight, with the chain it conditions on (StartDraft.tokens)
     pav         s.p_avail: position -> p
     tasks       s.tasks: id -> (tokens, first, last) of each live task
   The chain is committed ++ the draft tokens (s.chain).

   The models and the keyed randomness are parameters: target and drafter map a
   prefix to a distribution (of any type), key seed i purpose is the uniform
   U(i, purpose) (SeededChooser: a hash of (seed, i, purpose)), drafter gives the
   draft on a prefix under U(i, DRAFT) with the q to verify it by, and rule is Verifier.verify under U(i, ACCEPT) and
   U(i, RESIDUAL), returning (token, accepted) with "accepted -> token = draft".

   The scheduler's policy is left open: the model lets the environment start a
   draft whenever none is in flight, submit any task on any prefix of the chain
   (rules 2, 3 and 6 choose which, for each k and P), finish any live task in any
   order, cancel any task or draft at any time, and commit whenever p and the
   draft at the committed position are in hand (rules 4 and 5).  So every run of
   DSIScheduler, for every k, P, latency, queue discipline and order of events,
   is a run of this model (tests/test_coq_sched.py replays the Python scheduler
   through a line-for-line mirror of [step], proofs/coq_sched.py, to check that
   on random event sequences, and has Coq evaluate [step] on some of those runs
   to check the mirror).  The theorem: in every reachable state the committed prefix
   is the sequential reference's (dsi_ref.sequential.reference_tokens).

   Abstracted away: time, servers, the queue, held (non-preemptive) passes, which
   only delay events; the task ids' freshness; the contents of a result (a task's
   p at j is target (take j tokens), a draft is drafter U(i, DRAFT) on its prefix: condition (C) of T6). *)

From mathcomp Require Import all_ssreflect.

Set Implicit Arguments.
Unset Strict Implicit.
Unset Printing Implicit Defensive.

Inductive purpose := DRAFT | ACCEPT | RESIDUAL.

Section Model.

Variables (tok dist seedT unif : Type).
Variable target : seq tok -> dist.
(* The drafter worker (dsi_ref.workers.Drafter.draft): its token on a prefix under
   U(position, DRAFT), with the q to verify it by (one-hot(token) for point mass). *)
Variable drafter : unif -> seq tok -> tok * dist.
Variable key : seedT -> nat -> purpose -> unif.
Variable seed : seedT.
Variable rule : unif -> unif -> dist -> dist -> tok -> tok * bool.
Hypothesis rule_accepts : forall ua ur p q d, (rule ua ur p q d).2 -> (rule ua ur p q d).1 = d.
Variable n : nat.  (* max_tokens *)

(* ----- the sequential reference (dsi_ref/sequential.py) ----- *)

Definition draft_at (pre : seq tok) := drafter (key seed (size pre) DRAFT) pre.

Definition verify_at (i : nat) (p q : dist) (d : tok) :=
  rule (key seed i ACCEPT) (key seed i RESIDUAL) p q d.

Definition ref_token (x : seq tok) :=
  let (d, q) := draft_at x in (verify_at (size x) (target x) q d).1.

Fixpoint ref (i : nat) : seq tok := if i is j.+1 then rcons (ref j) (ref_token (ref j)) else [::].

Lemma size_ref i : size (ref i) = i.
Proof. by elim: i => //= i ih; rewrite size_rcons ih. Qed.

Lemma ref_prefix i m : i <= m -> take i (ref m) = ref i.
Proof.
elim: m => [|m ih]; first by rewrite leqn0 => /eqP ->.
rewrite leq_eqVlt => /orP [/eqP -> | lt]; first by rewrite take_oversize // size_ref.
by rewrite /= -cats1 takel_cat ?size_ref // ih.
Qed.

(* ----- the state and the transitions ----- *)

Record task := Task { t_id : nat; t_tokens : seq tok; t_first : nat; t_last : nat }.

Record state := State {
  committed : seq tok;
  drafts : seq (tok * dist);
  inflight : option (seq tok);
  pav : seq (nat * dist);
  tasks : seq task }.

Definition chain s := committed s ++ map fst (drafts s).

Definition init := State [::] [::] None [::] [::].

Fixpoint lookup (j : nat) (l : seq (nat * dist)) : option dist :=
  if l is e :: r then (if e.1 == j then Some e.2 else lookup j r) else None.

Fixpoint find_task (id : nat) (l : seq task) : option task :=
  if l is t :: r then (if t_id t == id then Some t else find_task id r) else None.

Definition drop_task id (l : seq task) := filter (fun t => t_id t != id) l.

Definition absent j pv := if lookup j pv is None then true else false.

(* _take_task: store p at j for each scored j >= c not stored yet. *)
Definition store (c : nat) (t : task) (pv : seq (nat * dist)) :=
  foldl (fun pv j => if (c <= j) && absent j pv then (j, target (take j (t_tokens t))) :: pv
                     else pv) pv (iota (t_first t) ((t_last t).+1 - t_first t)).

Inductive action :=
  | StartDraft                          (* rule 1 *)
  | DraftDone                           (* the in-flight draft's result *)
  | CancelDraft                         (* rule 5, or finishing *)
  | Submit (id m first last : nat)      (* rules 2, 3: a task on the chain's first m tokens *)
  | TaskDone (id : nat)                 (* a live task's result *)
  | CancelTask (id : nat)               (* rules 5, 6, or finishing *)
  | Commit.                             (* rules 4, 5: one position *)

Definition step (a : action) (s : state) : option state :=
  match a with
  | StartDraft =>
      if inflight s is Some _ then None
      else if size (chain s) < n
      then Some (State (committed s) (drafts s) (Some (chain s)) (pav s) (tasks s)) else None
  | DraftDone =>
      if inflight s is Some pre
      then Some (State (committed s) (rcons (drafts s) (draft_at pre)) None
                       (pav s) (tasks s))
      else None
  | CancelDraft => Some (State (committed s) (drafts s) None (pav s) (tasks s))
  | Submit id m first last =>
      if (m <= size (chain s)) && (first <= last <= m)
      then Some (State (committed s) (drafts s) (inflight s) (pav s)
                       (rcons (tasks s) (Task id (take m (chain s)) first last)))
      else None
  | TaskDone id =>
      if find_task id (tasks s) is Some t
      then Some (State (committed s) (drafts s) (inflight s)
                       (store (size (committed s)) t (pav s)) (drop_task id (tasks s)))
      else None
  | CancelTask id => Some (State (committed s) (drafts s) (inflight s) (pav s) (drop_task id (tasks s)))
  | Commit =>
      let c := size (committed s) in
      match lookup c (pav s), drafts s with
      | Some p, (d, q) :: rest =>
          if c < n then
            let (token, accepted) := verify_at c p q d in
            if accepted
            then Some (State (rcons (committed s) token) rest (inflight s)
                             (filter (fun e => e.1 != c) (pav s)) (tasks s))
            else Some (State (rcons (committed s) token) [::] None [::] [::])
          else None
      | _, _ => None
      end
  end.

Inductive reachable : state -> Prop :=
  | R_init : reachable init
  | R_step a s s' : reachable s -> step a s = Some s' -> reachable s'.

(* ----- the invariant ----- *)

(* Each stored draft is the drafter's keyed draw on the chain before it. *)
Fixpoint drafts_ok (pre : seq tok) (ds : seq (tok * dist)) : Prop :=
  if ds is (d, q) :: r then (d, q) = draft_at pre /\ drafts_ok (rcons pre d) r
  else True.

Definition p_ok (ch : seq tok) (e : nat * dist) := e.1 <= size ch /\ e.2 = target (take e.1 ch).

Definition task_ok (ch : seq tok) (t : task) :=
  t_last t <= size (t_tokens t) /\ size (t_tokens t) <= size ch /\
  take (size (t_tokens t)) ch = t_tokens t.

Record inv s : Prop := Inv {
  inv_ref : committed s = ref (size (committed s));
  inv_n : size (committed s) <= n;
  inv_drafts : drafts_ok (committed s) (drafts s);
  inv_inflight : forall pre, inflight s = Some pre -> pre = chain s;
  inv_pav : forall e, List.In e (pav s) -> p_ok (chain s) e;
  inv_tasks : forall t, List.In t (tasks s) -> task_ok (chain s) t }.

Lemma drafts_ok_rcons pre ds :
  drafts_ok pre ds -> drafts_ok pre (rcons ds (draft_at (pre ++ map fst ds))).
Proof.
elim: ds pre => [|[d' q'] r ih] pre /=; first by rewrite cats0; case: draft_at.
by move=> [h1 h2]; split=> //; rewrite -cat_rcons; apply: ih.
Qed.

Lemma lookup_in j l p : lookup j l = Some p -> List.In (j, p) l.
Proof.
by elim: l => [|[i x] r ih] //=; case: eqP => [-> [->] | _ /ih]; [left | right].
Qed.

Lemma find_task_in id l t : find_task id l = Some t -> List.In t l.
Proof. by elim: l => [|u r ih] //=; case: ifP => _ => [[->] | /ih]; [left | right]. Qed.

Lemma in_filter (A : Type) (f : pred A) x l : List.In x (filter f l) -> List.In x l.
Proof. by elim: l => [|y r ih] //=; case: ifP => _ /= => [[-> | /ih] | /ih]; auto. Qed.

Lemma in_rcons (A : Type) (x y : A) l : List.In x (rcons l y) -> List.In x l \/ x = y.
Proof. by elim: l => [|z r ih] /= => [[-> | []] | [-> | /ih [] ]]; auto. Qed.

Lemma take_rcons_le (A : Type) (l : seq A) x j : j <= size l -> take j (rcons l x) = take j l.
Proof. by move=> le; rewrite -cats1 takel_cat. Qed.

Lemma store_ok ch c t pv :
  task_ok ch t -> (forall e, List.In e pv -> p_ok ch e) ->
  forall e, List.In e (store c t pv) -> p_ok ch e.
Proof.
move=> [lt [sz pre]]; rewrite /store.
have : forall j, j \in iota (t_first t) ((t_last t).+1 - t_first t) -> j <= size (t_tokens t).
  move=> j; rewrite mem_iota => /andP [fj]; case: (leqP (t_first t) (t_last t).+1) => [le | gt].
    by rewrite subnKC // ltnS => jl; apply: leq_trans jl lt.
  have /eqP -> : (t_last t).+1 - t_first t == 0 by rewrite subn_eq0 ltnW.
  by rewrite addn0 ltnNge fj.
elim: (iota _ _) pv => [|j r ih] pv //= hr hpv.
apply: ih => [i ir | e]; first by apply: hr; rewrite inE ir orbT.
case: ifP => _; last exact: hpv.
move=> /= [<- | /hpv] //.
have jle : j <= size (t_tokens t) by apply: hr; rewrite inE eqxx.
split; first by rewrite (leq_trans jle sz).
by rewrite /= -pre take_take.
Qed.

(* The chain grows by one draft: every p and task on a prefix stays valid. *)
Lemma p_ok_grow ch x e : p_ok ch e -> p_ok (rcons ch x) e.
Proof.
case: e => j p [/= le hp]; split=> /=; first by rewrite size_rcons (leq_trans le).
by rewrite take_rcons_le.
Qed.

Lemma task_ok_grow ch x t : task_ok ch t -> task_ok (rcons ch x) t.
Proof.
move=> [a [b c]]; split=> //; split; first by rewrite size_rcons (leqW b).
by rewrite take_rcons_le.
Qed.

Lemma chain_draft s dq i pv ts :
  chain (State (committed s) (rcons (drafts s) dq) i pv ts) = rcons (chain s) dq.1.
Proof. by rewrite /chain /= map_rcons -rcons_cat. Qed.

Lemma verify_at_accepts i p q d t : verify_at i p q d = (t, true) -> t = d.
Proof.
by rewrite /verify_at => V; have := @rule_accepts (key seed i ACCEPT) (key seed i RESIDUAL) p q d;
  rewrite V; apply.
Qed.

Theorem step_inv a s s' : inv s -> step a s = Some s' -> inv s'.
Proof.
move=> [hc hn hd hi hp ht]; case: a => [| | |id m first last|id|id|] /=.
- case: (inflight s) => // ; case: ifP => // _ [<-]; split=> //= pre [<-] //.
- case E: (inflight s) => [pre|] // [<-].
  have ->:= hi pre E; split=> //=.
  + by apply: drafts_ok_rcons.
  + by rewrite chain_draft => e /hp /p_ok_grow.
  + by rewrite chain_draft => t /ht /task_ok_grow.
- by move=> [<-]; split.
- case: ifP => // /andP [m_le /andP [fl lm]] [<-]; split=> //.
  move=> t H; case: (in_rcons H) => [/ht // | ->].
  have szm : size (take m (chain s)) = m by rewrite size_take_min (minn_idPl m_le).
  have ch ts : chain (State (committed s) (drafts s) (inflight s) (pav s) ts) = chain s by [].
  by rewrite ch /task_ok /= szm.
- case F: find_task => [t|] // [<-]; split=> //=.
  + by apply: store_ok; [apply: ht; apply: find_task_in F | exact: hp].
  + by move=> u H; apply: ht; apply: in_filter H.
- by move=> [<-]; split=> // t H; apply: ht; apply: in_filter H.
- case L: lookup => [p|] //; case D: (drafts s) => [|[d q] rest] //.
  case: ifP => // cn; move: hd; rewrite D /= => [[hdq hrest]].
  have hpc : p = target (committed s).
    have [_ /= ->] := hp _ (lookup_in L).
    by rewrite /chain take_size_cat.
  have next : rcons (committed s) (verify_at (size (committed s)) p q d).1
              = ref (size (committed s)).+1.
    by rewrite /= -hc /ref_token -hdq hpc.
  case V: verify_at => [token accepted].
  have href : rcons (committed s) token = ref (size (rcons (committed s) token)).
    by rewrite size_rcons -next V.
  case: accepted V => V [<-]; last by split=> //; rewrite size_rcons.
  have td : token = d by apply: verify_at_accepts V.
  subst token.
  have ch : chain (State (rcons (committed s) d) rest (inflight s)
                     [seq e <- pav s | e.1 != size (committed s)] (tasks s)) = chain s.
    by rewrite /chain /= cat_rcons D.
  split; rewrite ?ch //; first by rewrite size_rcons.
  by move=> e H; apply: hp; apply: in_filter H.
Qed.

Lemma inv_init : inv init.
Proof. by split. Qed.

Theorem reachable_inv s : reachable s -> inv s.
Proof. by elim=> [|a s0 s1 _ ih]; [exact: inv_init | exact: step_inv]. Qed.

(* T6 on the model: in every reachable state, for every order of events, every
   policy (so every k and P), the committed prefix is the reference's. *)
Theorem committed_is_reference s :
  reachable s -> committed s = take (size (committed s)) (ref n).
Proof. by move=> /reachable_inv [hc hn _ _ _ _]; rewrite ref_prefix // -hc. Qed.

End Model.
