(* T1 for the sequential reference (and so, by Sched.v, for DSI): the law of the
   whole token sequence is the target's, for every vocabulary and length.

   The reference draws position i from the rule on (p, q) = (target, drafter) on
   the prefix, with the uniforms U(i, DRAFT | ACCEPT | RESIDUAL).  Uniforms at
   distinct positions are independent, so given the prefix, the token at i has
   the law sum_d q(d) * verify_law p q d, whatever came before: that is the
   definition of [ref_law] below (a chain of kernels; this is the one modelling
   step, Coq does not build the probability space over the uniforms).  Sched.v
   proves DSI's tokens equal the reference's for every value of the uniforms, so
   DSI's output has this law too. *)

From mathcomp Require Import all_ssreflect all_algebra.
From DSI Require Import Verify.

Set Implicit Arguments.
Unset Strict Implicit.
Unset Printing Implicit Defensive.

Import GRing.Theory.
Local Open Scope ring_scope.

Section Chain.

Variable R : realFieldType.
Variable T : finType.
Variables target drafter : seq T -> T -> R.
Hypothesis target_dist : forall x, dist (target x).
Hypothesis drafter_dist : forall x, dist (drafter x).

(* The law of the next token given the prefix: draft from q, then the rule. *)
Definition step_law (pre : seq T) (t : T) :=
  \sum_d drafter pre d * law_of (verify_law (target pre) (drafter pre) d) t.

(* The probability that the reference continues prefix pre with xs. *)
Fixpoint ref_law (pre xs : seq T) : R :=
  if xs is t :: r then step_law pre t * ref_law (rcons pre t) r else 1.

(* The target's law of the same continuation: prod_i p(x_i | x_<i). *)
Fixpoint target_law (pre xs : seq T) : R :=
  if xs is t :: r then target pre t * target_law (rcons pre t) r else 1.

Theorem reference_law pre xs : ref_law pre xs = target_law pre xs.
Proof.
elim: xs pre => [|t r ih] pre //=.
by rewrite ih /step_law verify_lossless.
Qed.

End Chain.
