// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {TestBase} from "./Vm.sol";
import {PocoHub} from "../../src/PocoHub.sol";
import {BatchProofs, IBatchSource} from "../../src/BatchProofs.sol";
import {AppRegistry} from "../../src/registries/AppRegistry.sol";
import {DatasetRegistry} from "../../src/registries/DatasetRegistry.sol";
import {WorkerpoolRegistry} from "../../src/registries/WorkerpoolRegistry.sol";
import {PocoOrders} from "../../src/libs/PocoOrders.sol";

/// @notice Exposes the order library's struct hashes (they take calldata) to tests.
contract OrderHasher {
    function app(PocoOrders.AppOrder calldata o) external pure returns (bytes32) {
        return PocoOrders.hash(o);
    }

    function dataset(PocoOrders.DatasetOrder calldata o) external pure returns (bytes32) {
        return PocoOrders.hash(o);
    }

    function workerpool(PocoOrders.WorkerpoolOrder calldata o) external pure returns (bytes32) {
        return PocoOrders.hash(o);
    }

    function request(PocoOrders.RequestOrder calldata o) external pure returns (bytes32) {
        return PocoOrders.hash(o);
    }

    function appOp(PocoOrders.AppOrderOperation calldata o) external pure returns (bytes32) {
        return PocoOrders.hash(o);
    }

    function datasetOp(PocoOrders.DatasetOrderOperation calldata o) external pure returns (bytes32) {
        return PocoOrders.hash(o);
    }

    function workerpoolOp(PocoOrders.WorkerpoolOrderOperation calldata o) external pure returns (bytes32) {
        return PocoOrders.hash(o);
    }

    function requestOp(PocoOrders.RequestOrderOperation calldata o) external pure returns (bytes32) {
        return PocoOrders.hash(o);
    }
}

/// @notice A deployed hub with one app, dataset and workerpool, funded parties and helpers to
///         build and sign orders and TEE messages.
abstract contract HubFixture is TestBase {
    uint256 internal constant APP_OWNER_KEY = 0xA11CE;
    uint256 internal constant DATASET_OWNER_KEY = 0xDA7A;
    uint256 internal constant SCHEDULER_KEY = 0x5C4ED;
    uint256 internal constant REQUESTER_KEY = 0x8E9;
    uint256 internal constant WORKER_KEY = 0x30BE8;
    uint256 internal constant ENCLAVE_KEY = 0xE4C1A;
    uint256 internal constant BROKER_KEY = 0xB80CE8;
    uint256 internal constant TIMEREF = 300;
    bytes32 internal constant TEE_TAG = bytes32(uint256(0x3)); // TEE + Scone, as iExec tags it

    uint256 internal constant APP_PRICE = 1e9;
    uint256 internal constant DATASET_PRICE = 2e9;
    uint256 internal constant WORKERPOOL_PRICE = 10e9;

    AppRegistry internal apps;
    DatasetRegistry internal datasets;
    WorkerpoolRegistry internal pools;
    PocoHub public hub;
    BatchProofs internal proofs;
    OrderHasher internal hasher;

    address internal appOwner;
    address internal datasetOwner;
    address internal scheduler;
    address internal requester;
    address internal worker;
    address internal enclave;
    address internal broker;
    address internal app;
    address internal dataset;
    address internal workerpool;

    function setUp() public virtual {
        appOwner = vm.addr(APP_OWNER_KEY);
        datasetOwner = vm.addr(DATASET_OWNER_KEY);
        scheduler = vm.addr(SCHEDULER_KEY);
        requester = vm.addr(REQUESTER_KEY);
        worker = vm.addr(WORKER_KEY);
        enclave = vm.addr(ENCLAVE_KEY);
        broker = vm.addr(BROKER_KEY);

        apps = new AppRegistry();
        datasets = new DatasetRegistry();
        pools = new WorkerpoolRegistry();
        hub = new PocoHub(apps, datasets, pools);
        proofs = new BatchProofs(IBatchSource(address(hub)));
        hasher = new OrderHasher();
        hub.createCategory("S", "small jobs", TIMEREF);

        app = apps.createApp(appOwner, "pox-python", "DOCKER", "docker.io/pox/python", keccak256("img"), hex"c0de");
        dataset = datasets.createDataset(datasetOwner, "reads", "ipfs://reads", keccak256("reads"));
        workerpool = pools.createWorkerpool(scheduler, "tee pool");

        fund(requester, 1e15);
        fund(scheduler, 1e15);
        vm.warp(1_700_000_000);
    }

    function fund(address account, uint256 amount) internal {
        vm.deal(account, amount);
        vm.prank(account);
        hub.deposit{value: amount}();
    }

    function typedHash(bytes32 structHash) internal view returns (bytes32) {
        return keccak256(abi.encodePacked("\x19\x01", hub.eip712domain_separator(), structHash));
    }

    function appOrder(uint256 volume) internal view returns (PocoOrders.AppOrder memory o) {
        o.app = app;
        o.appprice = APP_PRICE;
        o.volume = volume;
        o.tag = TEE_TAG;
        o.salt = keccak256("app salt");
        o.sign = signDigest(APP_OWNER_KEY, typedHash(hasher.app(o)));
    }

    function datasetOrder(uint256 volume) internal view returns (PocoOrders.DatasetOrder memory o) {
        o.dataset = dataset;
        o.datasetprice = DATASET_PRICE;
        o.volume = volume;
        o.tag = TEE_TAG;
        o.salt = keccak256("dataset salt");
        o.sign = signDigest(DATASET_OWNER_KEY, typedHash(hasher.dataset(o)));
    }

    function workerpoolOrder(uint256 volume) internal view returns (PocoOrders.WorkerpoolOrder memory o) {
        o.workerpool = workerpool;
        o.workerpoolprice = WORKERPOOL_PRICE;
        o.volume = volume;
        o.tag = TEE_TAG;
        o.category = 0;
        o.trust = 1;
        o.salt = keccak256("workerpool salt");
        o.sign = signDigest(SCHEDULER_KEY, typedHash(hasher.workerpool(o)));
    }

    function requestOrder(uint256 volume) internal view returns (PocoOrders.RequestOrder memory o) {
        o.app = app;
        o.appmaxprice = APP_PRICE;
        o.dataset = dataset;
        o.datasetmaxprice = DATASET_PRICE;
        o.workerpool = address(0);
        o.workerpoolmaxprice = WORKERPOOL_PRICE;
        o.requester = requester;
        o.volume = volume;
        o.tag = TEE_TAG;
        o.category = 0;
        o.trust = 1;
        o.beneficiary = requester;
        o.params = '{"snakemake_rule":"align"}';
        o.salt = keccak256("request salt");
        o.sign = signDigest(REQUESTER_KEY, typedHash(hasher.request(o)));
    }

    function resignApp(PocoOrders.AppOrder memory o) internal view {
        o.sign = signDigest(APP_OWNER_KEY, typedHash(hasher.app(o)));
    }

    function resignDataset(PocoOrders.DatasetOrder memory o) internal view {
        o.sign = signDigest(DATASET_OWNER_KEY, typedHash(hasher.dataset(o)));
    }

    function resignWorkerpool(PocoOrders.WorkerpoolOrder memory o) internal view {
        o.sign = signDigest(SCHEDULER_KEY, typedHash(hasher.workerpool(o)));
    }

    function resignRequest(PocoOrders.RequestOrder memory o) internal view {
        o.sign = signDigest(REQUESTER_KEY, typedHash(hasher.request(o)));
    }

    function matchDefault(uint256 volume) internal returns (bytes32) {
        return hub.matchOrders(appOrder(volume), datasetOrder(volume), workerpoolOrder(volume), requestOrder(volume));
    }

    /// @dev A batched deal: the requester asks for `TAG_BATCHED` and the scheduler offers it.
    function matchBatched(uint256 volume) internal returns (bytes32) {
        PocoOrders.WorkerpoolOrder memory w = workerpoolOrder(volume);
        PocoOrders.RequestOrder memory r = requestOrder(volume);
        w.tag = TEE_TAG | hub.TAG_BATCHED();
        r.tag = TEE_TAG | hub.TAG_BATCHED();
        resignWorkerpool(w);
        resignRequest(r);
        return hub.matchOrders(appOrder(volume), datasetOrder(volume), w, r);
    }

    /// @dev Scheduler's authorization of `who` for a task (or batch) id and enclave.
    function authorization(address who, bytes32 subject, address enclaveChallenge)
        internal
        pure
        returns (bytes memory)
    {
        return signEthMessage(SCHEDULER_KEY, keccak256(abi.encodePacked(who, subject, enclaveChallenge)));
    }

    /// @dev Enclave's signature over PoCo's (resultHash, resultSeal) for `who`.
    function enclaveSignature(uint256 enclaveKey, address who, bytes32 subject, bytes32 digest)
        internal
        pure
        returns (bytes memory)
    {
        bytes32 resultHash = keccak256(abi.encodePacked(subject, digest));
        bytes32 resultSeal = keccak256(abi.encodePacked(who, subject, digest));
        return signEthMessage(enclaveKey, keccak256(abi.encodePacked(resultHash, resultSeal)));
    }

    function contribute(bytes32 taskid, bytes32 digest) internal {
        bytes memory auth = authorization(worker, taskid, enclave);
        bytes memory esig = enclaveSignature(ENCLAVE_KEY, worker, taskid, digest);
        vm.prank(worker);
        hub.contributeAndFinalize(taskid, digest, "ipfs://result", "", enclave, esig, auth);
    }
}
