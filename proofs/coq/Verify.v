(* The per-position verification rule of dsi_ref/verify.py, and its losslessness
   for every finite vocabulary (T1, Lemmas A and B of docs/theorems.md).

   Tokens form any finite type T; probabilities live in any ordered field R
   (mathcomp's realFieldType: rat, the real algebraic numbers, ...).  The rule is
   written as the law of the committed token given the draft, branch for branch as
   Verifier.verify computes it:

     q[d] <= 0                -> InvalidDraft               (None here)
     ratio = p[d] / q[d]
     ratio >= 1               -> the draft, surely
     otherwise                -> the draft when U(ACCEPT) < ratio (probability
                                 ratio), else a draw from residual(p, q)
     residual(p, q) = normalize([max(0, p[x] - q[x])])
     normalize(w): total <= 0 -> InvalidDistribution        (None here)
                   otherwise  -> w / total

   What is abstracted: a Bernoulli "U < b" with U uniform on [0, 1) is taken to
   have probability b, and a choice by inverse cdf of exact weights w summing to 1
   to have law w (SeededChooser's hash is assumed uniform; dsi_ref.exact checks
   both on the code).  Python's max(a, b) returns a unless b > a: pos_part
   below.  normalize's shortcut for a total of exactly 1 returns w itself, which
   equals w / 1, so it is not modelled separately.

   The planted-bug test (tests/test_coq.py) replaces the line marked PLANT with a
   residual taken from p and expects this file to fail to check. *)

From mathcomp Require Import all_ssreflect all_algebra.

Set Implicit Arguments.
Unset Strict Implicit.
Unset Printing Implicit Defensive.

Import Order.TTheory GRing.Theory Num.Theory.
Local Open Scope ring_scope.

Section Rule.

Variable R : realFieldType.
Variable T : finType.

Implicit Types (p q w : T -> R) (d x : T).

(* A probability vector over the vocabulary. *)
Definition dist p := (forall x, 0 <= p x) /\ \sum_x p x = 1.

(* Python's max(zero, a): zero unless a > zero. *)
Definition pos_part (a : R) := if 0 < a then a else 0.

(* dsi_ref.prob.normalize: None is the InvalidDistribution it raises. *)
Definition normalize w : option (T -> R) :=
  let t := \sum_x w x in if t <= 0 then None else Some (fun x => w x / t).

Definition res_weight p q x := pos_part (p x - q x). (* PLANT *)

(* dsi_ref.prob.residual *)
Definition residual p q := normalize (res_weight p q).

Definition ratio p q d := p d / q d.

(* The probability that "ratio >= 1 or U(ACCEPT) < ratio" holds. *)
Definition accept_prob p q d := if 1 <= ratio p q d then 1 else ratio p q d.

Definition dirac d x : R := (x == d)%:R.

(* dsi_ref.verify.point_mass *)
Definition point_mass d : T -> R := dirac d.

(* The law of the token Verifier.verify commits for draft d; None is the error it
   raises (InvalidDraft, or InvalidDistribution from the residual). *)
Definition verify_law p q d : option (T -> R) :=
  if q d <= 0 then None
  else if 1 <= ratio p q d then Some (dirac d)
  else match residual p q with
       | None => None
       | Some r => Some (fun x => ratio p q d * dirac d x + (1 - ratio p q d) * r x)
       end.

(* The probability of x under an outcome's law; an error carries no mass. *)
Definition law_of (o : option (T -> R)) x := if o is Some f then f x else 0.

(* END OF THE RULE: proofs follow. *)

Variables p q : T -> R.
Hypothesis Hp : dist p.
Hypothesis Hq : dist q.

Let p_ge0 x : 0 <= p x. Proof. by case: Hp. Qed.
Let q_ge0 x : 0 <= q x. Proof. by case: Hq. Qed.

(* The accepted mass at x is min(p x, q x), also where q x = 0. *)
Definition mn x := if p x < q x then p x else q x.

Lemma accepted_mass x : q x * accept_prob p q x = mn x.
Proof.
rewrite /accept_prob /ratio /mn.
have [q0 | qx_pos] := eqVneq (q x) 0.
  by rewrite q0 invr0 mulr0 ler10 mul0r ltNge p_ge0.
have qpos : 0 < q x by rewrite lt0r qx_pos q_ge0.
rewrite ler_pdivl_mulr // mul1r.
by case: leP => [_ | _]; rewrite ?mulr1 // mulrC divfK.
Qed.

Lemma res_weight_mn x : res_weight p q x = p x - mn x.
Proof.
rewrite /res_weight /pos_part /mn subr_gt0.
case: ltP => [qp | pq]; first by rewrite ltNge (ltW qp).
case: ltP => [_ | qp]; first by rewrite subrr.
by apply/eqP; rewrite eq_sym subr_eq0 eq_le pq qp.
Qed.

Lemma mn_le_q x : mn x <= q x.
Proof. by rewrite /mn; case: ltP => // /ltW. Qed.

Lemma res_weight_ge0 x : 0 <= res_weight p q x.
Proof. by rewrite /res_weight /pos_part; case: ltP => // /ltW. Qed.

(* The rejection probability equals the residual's total mass. *)
Lemma rejected_mass :
  \sum_d q d * (1 - accept_prob p q d) = \sum_x res_weight p q x.
Proof.
transitivity (\sum_d (q d - mn d)).
  by apply: eq_bigr => d _; rewrite mulrBr mulr1 accepted_mass.
under [RHS]eq_bigr do rewrite res_weight_mn.
by have [_ sp] := Hp; have [_ sq] := Hq; rewrite !sumrB sp sq.
Qed.

Lemma accepted_at x : \sum_d q d * (accept_prob p q d * dirac d x) = mn x.
Proof.
rewrite (bigD1 x) //= big1 ?addr0; first by rewrite /dirac eqxx mulr1 accepted_mass.
by move=> d dx; rewrite /dirac eq_sym (negbTE dx) mulr0 mulr0.
Qed.

(* The form asked for: accepted mass at x, plus the rejection mass times the
   residual law at x (the residual carries no mass where normalize fails). *)
Theorem verify_lossless_split x :
  \sum_d q d * (accept_prob p q d * dirac d x)
  + (\sum_d q d * (1 - accept_prob p q d)) * law_of (residual p q) x = p x.
Proof.
rewrite accepted_at rejected_mass /residual /normalize.
set t := \sum_x res_weight p q x.
have t_ge0 : 0 <= t by apply: sumr_ge0 => y _; exact: res_weight_ge0.
case: leP => [t_le0 | t_pos] /=.
  have wx_le : res_weight p q x <= t.
    rewrite /t (bigD1 x) //= -[X in X <= _]addr0 ler_add2l.
    by apply: sumr_ge0 => y _; exact: res_weight_ge0.
  have wx0 : res_weight p q x = 0.
    by apply/eqP; rewrite eq_le res_weight_ge0 (le_trans wx_le t_le0).
  by move: wx0; rewrite res_weight_mn mulr0 addr0 => /eqP; rewrite subr_eq0 => /eqP.
rewrite mulrC divfK ?(gt_eqF t_pos) // res_weight_mn.
by rewrite addrC subrK.
Qed.

(* A draft q can propose (q d > 0) never makes the code raise. *)
Theorem verify_total d : 0 < q d -> exists r, verify_law p q d = Some r.
Proof.
move=> qd_pos; rewrite /verify_law leNgt qd_pos /=.
case: leP => [_ | ratio_lt1]; first by eexists.
have pq : p d < q d by move: ratio_lt1; rewrite /ratio ltr_pdivr_mulr // mul1r.
rewrite /residual /normalize -rejected_mass.
have -> : \sum_y q y * (1 - accept_prob p q y) = \sum_y (q y - mn y).
  by apply: eq_bigr => y _; rewrite mulrBr mulr1 accepted_mass.
have pos : 0 < \sum_y (q y - mn y).
  rewrite (bigD1 d) //= -[X in X < _]addr0 ltr_le_add //.
    by rewrite /mn pq subr_gt0.
  by apply: sumr_ge0 => y _; rewrite subr_ge0 mn_le_q.
by rewrite leNgt pos /=; eexists.
Qed.

(* T1 Lemma A: the committed token has law p. *)
Theorem verify_lossless x : \sum_d q d * law_of (verify_law p q d) x = p x.
Proof.
rewrite -[RHS]verify_lossless_split mulr_suml -big_split /=.
apply: eq_bigr => d _; rewrite /verify_law /accept_prob.
case: leP => [qd_le0 | qd_pos] /=.
  have -> : q d = 0 by apply/eqP; rewrite eq_le qd_le0 q_ge0.
  by rewrite !mul0r addr0.
case: leP => [_ | ratio_lt1].
  by rewrite subrr mulr0 mul0r addr0 mul1r.
have [r hr] := verify_total qd_pos.
move: hr; rewrite /verify_law leNgt qd_pos /= leNgt ratio_lt1 /=.
case: (residual p q) => [f _ | //] /=.
by rewrite mulrDr !mulrA.
Qed.

End Rule.

Section PointMass.

Variable R : realFieldType.
Variable T : finType.
Variable p : T -> R.
Hypothesis Hp : @dist R T p.

Lemma point_mass_dist (d : T) : dist (point_mass R d).
Proof.
split=> [x | ]; first by rewrite /point_mass /dirac ler0n.
rewrite (bigD1 d) //= big1 ?addr0 /point_mass /dirac ?eqxx //.
by move=> x /negbTE ->.
Qed.

(* T1 Lemma B: with the proposal one-hot(d), for every draft d the committed
   token has law p, conditionally on d; and the code does not raise. *)
Theorem point_mass_lossless (d : T) :
  exists r, verify_law p (point_mass R d) d = Some r /\ forall x, r x = p x.
Proof.
have hq := point_mass_dist d.
have [r hr] : exists r, verify_law p (point_mass R d) d = Some r.
  by apply: verify_total; rewrite // /point_mass /dirac eqxx ltr01.
exists r; split=> // x.
rewrite -(verify_lossless Hp hq x) (bigD1 d) //= big1 ?addr0.
  by rewrite /point_mass /dirac eqxx mul1r hr.
by move=> y /negbTE yd; rewrite /point_mass /dirac yd mul0r.
Qed.

End PointMass.
