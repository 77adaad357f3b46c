"""module_utils/kubectl.py: a Deployment's revisions from its ReplicaSets and the revision a rollback goes to
(table-driven), and the commands as built."""
import pytest

from ansible_collections.agentops.runbooks.plugins.module_utils import kubectl as kc


def deployment(revision, name="api", uid="u-1"):
    return {"metadata": {"name": name, "uid": uid, "annotations": {kc.REVISION: str(revision)}}}


def replicaset(revision, history=None, owner="api", uid="u-1", kind="Deployment"):
    annotations = {kc.REVISION: str(revision)}
    if history:
        annotations[kc.HISTORY] = ",".join(str(n) for n in history)
    return {"metadata": {"annotations": annotations, "ownerReferences": [{"kind": kind, "name": owner, "uid": uid}]}}


@pytest.mark.parametrize("live, sets, expected", [
    (3, [replicaset(1), replicaset(2), replicaset(3)], {"current": 3, "history": [1, 2, 3], "live_history": []}),
    # after an undo to 2: the template of 2 is now 4 and remembers 2
    (4, [replicaset(1), replicaset(3), replicaset(4, [2])], {"current": 4, "history": [1, 3, 4], "live_history": [2]}),
    # another Deployment's ReplicaSets (another uid) and a StatefulSet's are not ours
    (2, [replicaset(1), replicaset(2), replicaset(9, uid="u-2"), replicaset(8, kind="StatefulSet")],
     {"current": 2, "history": [1, 2], "live_history": []}),
])
def test_revisions(live, sets, expected):
    assert kc.revisions(deployment(live), {"items": sets}) == expected


@pytest.mark.parametrize("state, wanted, expected", [
    ({"current": 3, "history": [1, 2, 3], "live_history": []}, "previous", 2),
    ({"current": 5, "history": [1, 3, 5], "live_history": [2]}, "previous", 3),
    ({"current": 3, "history": [1, 2, 3], "live_history": []}, "1", 1),
    ({"current": 3, "history": [1, 2, 3], "live_history": []}, "3", None),  # already live
    ({"current": 4, "history": [1, 3, 4], "live_history": [2]}, "2", None),  # rolled back to 2 before: now 4
])
def test_target_revision(state, wanted, expected):
    assert kc.target_revision(state, wanted, "deployment/api") == expected


@pytest.mark.parametrize("state, wanted, message", [
    ({"current": 1, "history": [1], "live_history": []}, "previous", "is at revision 1 and has no earlier revision"),
    ({"current": 3, "history": [1, 2, 3], "live_history": []}, "9", "has no revision 9 (its revisions are 1, 2, 3)"),
])
def test_target_revision_refusals(state, wanted, message):
    with pytest.raises(kc.KubectlError, match=message.replace("(", r"\(").replace(")", r"\)")):
        kc.target_revision(state, wanted, "deployment/api")


def test_a_deployment_that_never_rolled_out_is_one_sentence():
    with pytest.raises(kc.KubectlError, match="has no deployment.kubernetes.io/revision annotation yet"):
        kc.revisions({"metadata": {"name": "api"}}, {"items": []})


@pytest.mark.parametrize("deployment_name, namespace, ok", [
    ("agent-api", "agents", True), ("api.v2", "default", True), ("Agent", "agents", False), ("-x", "agents", False),
    ("api", "--all-namespaces", False), ("api", "a" * 64, False), ("a" * 254, "agents", False),
])
def test_check_names(deployment_name, namespace, ok):
    if ok:
        kc.check_names(deployment_name, namespace)
    else:
        with pytest.raises(ValueError):
            kc.check_names(deployment_name, namespace)


def test_commands_and_kubeconfig_in_the_environment():
    seen = []
    client = kc.Kubectl(lambda argv, timeout, env: seen.append((argv, env)) or (0, "", ""), "kubectl", "agents",
                        kubeconfig="/etc/kube/config", context="prod")
    assert client.undo_argv("api", 4) == ["kubectl", "--context=prod", "rollout", "undo", "deployment/api", "-n", "agents",
                                          "--to-revision=4"]
    assert client.show(client.status_argv("api", 60)) == (
        "KUBECONFIG=/etc/kube/config kubectl --context=prod rollout status deployment/api -n agents --timeout=60s")
    client.call(client.restart_argv("api"))
    assert seen[0][1]["KUBECONFIG"] == "/etc/kube/config" and "--kubeconfig" not in seen[0][0]


def test_a_failing_command_is_one_sentence_with_kubectls_words():
    client = kc.Kubectl(lambda argv, timeout, env: (1, "", 'Error from server (Forbidden): deployments.apps "api" is forbidden\n'))
    with pytest.raises(kc.KubectlError) as error:
        client.deployment("api")
    assert str(error.value) == ('kubectl get deployment api -n default -o json failed: Error from server (Forbidden): '
                                'deployments.apps "api" is forbidden.')
